// swift-tools-version:6.0
// gatewayd: a pre-fork HTTP/1.1 -> FastCGI / CGI gateway.
//
// Modules point downwards only (see docs/ARCHITECTURE.md and ../shared/design.md §2):
//   gatewayd -> Arbiter (master, AppSupervisor: hosted app processes) -> AppPool -> GatewayConfig
//            -> Workers (drivers: system calls, logs, metrics)
//                 -> Observability (access log, status page, /metrics) -> AppPool, Exchanges
//                 -> Exchanges (sans-IO request engine) -> CGIProtocol -> HTTPWire
//                                                       -> FastCGIWire
//                 -> AppPool (slot table, FIFO queue, kept connections), GatewayLogging,
//                    GatewaySystem -> CGatewayShims
// HTTPWire, FastCGIWire, CGIProtocol and Exchanges are sans-IO: they import neither
// Glibc, Foundation, GatewaySystem nor Logging. Each target declares exactly what it
// imports; scripts/test builds with --explicit-target-dependency-import-check=error, so an
// undeclared import fails the build.
import PackageDescription

// Release builds of the server's own modules leave out the dynamic exclusivity checks:
// a runtime call on every access to a class's stored property, 12% of the instructions
// a worker spends on a FastCGI request (callgrind, docs/ARCHITECTURE.md). The static
// checks stay, and debug builds keep the dynamic ones: every test, the integration
// suites' gatewayd included, runs a checked build, so a violation still fails the suite.
let server: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "gatewayd",
    products: [
        .executable(name: "gatewayd", targets: ["gatewayd"]),
        // The Swift sample FastCGI app (apps/swift), on libfcgi.
        .executable(name: "swift-app", targets: ["SwiftSampleApp"]),
    ],
    dependencies: [
        // CLI parsing, `--help`, subcommands.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // TOML 1.0 parsing (toml++ underneath); gives line/column on syntax errors.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Logger API for the master and workers (our handler writes time, level, pid).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "CGatewayShims"),
        // TLS (issue #11): OpenSSL 3 from Debian (libssl-dev), behind C shims (its settings
        // are macros), driven sans-IO through memory BIOs so every worker keeps its sockets.
        .target(name: "CTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "ContentCoding", dependencies: ["CZlib"], swiftSettings: server),
        .systemLibrary(name: "CNGHTTP2", path: "Sources/CNGHTTP2"),
        .target(name: "HTTP2", dependencies: ["CNGHTTP2"], swiftSettings: server),
        .target(name: "TLS", dependencies: ["CTLS", "GatewayConfig", "HTTPWire"], swiftSettings: server),
        .target(name: "GatewaySystem", dependencies: ["CGatewayShims"], swiftSettings: server),
        .target(name: "HTTPWire", swiftSettings: server),
        .target(name: "FastCGIWire", swiftSettings: server),
        .target(name: "CGIProtocol", dependencies: ["HTTPWire"], swiftSettings: server),
        .target(name: "GatewayConfig", dependencies: [
            "HTTPWire",  // IP address syntax for forwarded_allow_ips, status_allow, route allow
            .product(name: "TOMLKit", package: "TOMLKit"),
        ], swiftSettings: server),
        .target(name: "GatewayLogging", dependencies: [
            "GatewaySystem", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: server),
        // The request engine, sans-IO: FastCGI request records and response relay, CGI
        // output relay, response heads, the retry policy, notes for the log.
        .target(name: "Exchanges", dependencies: ["HTTPWire", "FastCGIWire", "CGIProtocol", "ContentCoding"], swiftSettings: server),
        // The app pool: the shared slot table (slots, FIFO queue, every slot transition)
        // and each worker's side of it (AppDispatcher: leases, kept connections).
        .target(name: "AppPool", dependencies: ["Exchanges", "GatewayConfig", "GatewaySystem"], swiftSettings: server),
        // What operators read: the access log (thread-safe, checked Sendable), the status
        // page and /metrics, from the configuration and the shared slot table.
        .target(name: "Observability", dependencies: ["AppPool", "Exchanges", "GatewayConfig", "GatewayLogging", "GatewaySystem"], swiftSettings: server),
        // The worker classes: drivers that turn the engine's decisions into system calls.
        .target(name: "Workers", dependencies: ["Exchanges", "AppPool", "Observability", "HTTPWire", "CGIProtocol", "GatewayConfig", "GatewaySystem", "TLS",
                                                "ContentCoding", "HTTP2", "GatewayLogging", .product(name: "Logging", package: "swift-log")], swiftSettings: server),
        // The master: listeners, worker processes, signals, reload, and the process
        // manager of hosted apps (AppSupervisor), which only the master runs.
        .target(name: "Arbiter", dependencies: ["AppPool", "GatewayConfig", "GatewaySystem", "GatewayLogging",
                                                .product(name: "Logging", package: "swift-log")], swiftSettings: server),
        .executableTarget(name: "gatewayd", dependencies: [
            "GatewayConfig", "GatewaySystem", "GatewayLogging", "Arbiter", "Workers", "AppPool", "Observability", "TLS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: server),
        // libfcgi for the Swift sample app (Debian: libfcgi-dev; scripts/setup installs it).
        .systemLibrary(name: "CFastCGI", path: "apps/swift/CFastCGI"),
        .executableTarget(name: "SwiftSampleApp", dependencies: ["CFastCGI"], path: "apps/swift/Sources/SwiftSampleApp"),
        .testTarget(name: "HTTPWireTests", dependencies: ["HTTPWire"], exclude: ["Fixtures"]),
        .testTarget(name: "FastCGIWireTests", dependencies: ["FastCGIWire", "CGIProtocol"]),
        .testTarget(name: "CGIProtocolTests", dependencies: ["CGIProtocol", "HTTPWire"]),
        .testTarget(name: "GatewayConfigTests", dependencies: ["GatewayConfig"]),
        .testTarget(name: "GatewaySystemTests", dependencies: ["GatewaySystem"]),
        .testTarget(name: "HTTP2Tests", dependencies: ["HTTP2"]),
        .testTarget(name: "ContentCodingTests", dependencies: ["ContentCoding"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "GatewayConfig"]),
        .testTarget(name: "AppPoolTests", dependencies: ["AppPool", "GatewayConfig", "GatewaySystem"]),
        .testTarget(name: "ExchangesTests", dependencies: ["Exchanges", "HTTPWire", "CGIProtocol", "FastCGIWire"]),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability"]),
        .testTarget(name: "WorkersTests", dependencies: ["Workers", "Exchanges", "GatewayConfig", "GatewaySystem", "HTTPWire", "CGIProtocol"]),
        // Runs real peers: the gatewayd binary, libfcgi / flup / php-cgi apps.
        .testTarget(name: "IntegrationTests", dependencies: ["HTTPWire", "FastCGIWire", "CGIProtocol", "GatewaySystem"], exclude: ["Apps"]),
    ]
)
