import Foundation
import GatewaySystem
import Testing
import Glibc

/// The many-machine picture: HAProxy (Debian's, with the shipped config/haproxy.cfg) in
/// front of two gatewayd masters that speak the PROXY protocol to it; one master is
/// stopped under keep-alive load, and no request fails.
@Suite("HAProxy in front of two gatewayd masters", .serialized)
struct HAProxyTests {
    static let config = HostedAppsTests.cAppAtC

    @Test("TERM to one gatewayd under load through HAProxy: 0 failed requests", arguments: ["epoll"])
    func stopOneUnderLoad(workerClass: String) throws {
        let binary = try #require(["/usr/sbin/haproxy", "/usr/bin/haproxy"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                  "haproxy is not installed (scripts/setup installs it)")
        let g1 = try GatewaydServer(config: Self.config, server: "keepalive = 5", workers: 2, workerClass: workerClass)
        defer { g1.stop() }
        let g2 = try GatewaydServer(config: Self.config, server: "keepalive = 5", workers: 2, workerClass: workerClass)
        defer { g2.stop() }
        // Both speak the PROXY protocol on their one listener, as the shipped config expects.
        for g in [g1, g2] {
            try g.writeConfig(Self.config, server: "keepalive = 5\nproxy_protocol = [\"127.0.0.1:\(g.port)\"]", workers: 2)
            g.signal(SIGHUP)
        }
        for g in [g1, g2] {
            let reloaded = Date().addingTimeInterval(10)
            while !g.errorLog.contains("HUP: configuration reloaded") && Date() < reloaded { usleep(50_000) }
        }
        usleep(500_000)
        let front = try freePort()
        var text = try String(contentsOfFile: repositoryRoot + "/config/haproxy.cfg", encoding: .utf8)
        text = text.replacingOccurrences(of: "127.0.0.1:8000", with: "127.0.0.1:\(front)")
            .replacingOccurrences(of: "127.0.0.1:8081", with: "127.0.0.1:\(g1.port)")
            .replacingOccurrences(of: "127.0.0.1:8082", with: "127.0.0.1:\(g2.port)")
        let cfg = g1.dir + "/haproxy.cfg"
        try text.write(toFile: cfg, atomically: true, encoding: .utf8)
        let null = try FileDescriptor.openForReading("/dev/null")!
        let log = try FileDescriptor(Glibc.open(g1.dir + "/haproxy.log", O_WRONLY | O_CREAT | O_TRUNC, 0o644))
        let haproxy = try Processes.spawn(path: binary, arguments: ["haproxy", "-db", "-f", cfg], environment: [], fds: [(null, 0), (log, 1), (log, 2)])
        try? null.close()
        try? log.close()
        defer {
            kill(haproxy, SIGKILL)
            _ = Processes.wait(haproxy)
        }
        let deadline = Date().addingTimeInterval(10)
        var ready = false
        while !ready && Date() < deadline {
            ready = (try? http(front, "GET", "/c/hello", timeout: 2))?.status == 200
            if !ready { usleep(100_000) }
        }
        try #require(ready, "HAProxy did not serve: \(String(decoding: (try? Host.readFile(g1.dir + "/haproxy.log")) ?? [], as: UTF8.self))")

        let load = try DrainTests.Load(port: front, path: "/c/hello")
        usleep(1_500_000)
        g1.signal(SIGTERM)
        #expect(g1.waitForExit(timeout: 15) == 0)
        usleep(1_500_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(result.errors)")
        #expect(result.requests > 200)
        #expect(try http(front, "GET", "/c/hello").status == 200)
        // The PROXY protocol carried the client through HAProxy (access logs are written
        // in batches: wait for g2's).
        #expect(HostedAppsTests.eventually(5) { g2.accessLog.contains("127.0.0.1 - - [") }, "\(g2.accessLog.prefix(300))")
        print("haproxy: \(result.requests) requests through HAProxy, \(result.failures) failed, one of two gatewayd stopped")
    }
}
