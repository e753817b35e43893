import Foundation
import GatewaySystem
import Testing
import Glibc

/// A connect app served by several servers on other loopback addresses: the load goes
/// by weight, a server killed (-9) or stopped under load costs no GET (retried once on
/// another server, then the server is marked down), and both come back after a restart.
@Suite("connect apps with several servers", .serialized)
struct ScaleOutTests {
    /// A FastCGI server of our own on a TCP address: the C app (libfcgi) or the Python
    /// one (flup), each single-threaded. Started by posix_spawn, not Foundation's
    /// Process: a Process started before gatewayd is not seen to exit while gatewayd
    /// runs (its exit is watched through a socket that later children inherit).
    final class Backend {
        let address: String
        let command: [String]
        let label: String
        let environment: [String]
        var pid: Int32 = 0

        /// `port`: nil for a free one; `arguments` and `environment` go to the Python app.
        init(host: String, c: Bool, label: String, port: Int? = nil, arguments: [String] = [], environment: [String] = []) throws {
            address = "\(host):\(try port ?? freePort())"
            command = c ? [HostedAppsTests.cApp, address] : ["python3", HostedAppsTests.pythonApp, "--bind", address] + arguments
            self.label = label
            self.environment = environment
            try start()
        }

        func start() throws {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            let null = try FileDescriptor.openForReading("/dev/null")!
            defer { try? null.close() }
            pid = try Processes.spawn(path: "/usr/bin/env", arguments: ["env"] + command, environment: ["PATH=" + path, "APP_LABEL=" + label] + environment,
                                      fds: [(null, 0), (null, 1), (null, 2)])
            let parts = address.split(separator: ":")
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let fd = try? Socket.connectTCP(host: String(parts[0]), port: Int(parts[1])!) { try? fd.close(); return }
                usleep(20_000)
            }
            throw TestFailure("backend \(command) did not listen on \(address)")
        }

        func stop(_ signal: Int32) {
            guard pid > 0 else { return }
            kill(pid, signal)
            _ = Processes.wait(pid)
            pid = 0
        }

        deinit { stop(SIGKILL) }
    }

    static func servers(_ backends: [Backend], weights: [Int], maxConns: Int) -> String {
        zip(backends, weights).map { "{ address = \"\($0.address)\", max_conns = \(maxConns), weight = \($1) }" }.joined(separator: ", ")
    }

    static func serverRows(_ port: Int) throws -> [[String: Any]] {
        let app = try HostedAppsTests.appStatus(port, "pool")
        return try #require(app["servers"] as? [[String: Any]])
    }

    @Test("the load goes by weight (2:1:1)", arguments: ["sync", "epoll"])
    func weights(workerClass: String) throws {
        let backends = try [("127.0.0.2", "A"), ("127.0.0.3", "B"), ("127.0.0.4", "C")].map { try Backend(host: $0.0, c: false, label: $0.1) }
        let config = """
            [[app]]
            name = "pool"
            servers = [\(Self.servers(backends, weights: [2, 1, 1], maxConns: 1))]
            [[route]]
            path = "/py"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"", workers: 2, workerClass: workerClass)
        defer { server.stop() }
        var counts: [String: Int] = [:]
        for _ in 0..<400 {
            let r = try http(server.port, "GET", "/py/whoami")
            #expect(r.status == 200)
            counts[String(r.text.split(separator: " ").first ?? "?"), default: 0] += 1
        }
        // Within 10% of the weights' shares: 200, 100, 100.
        #expect((180...220).contains(counts["A"] ?? 0) && (90...110).contains(counts["B"] ?? 0) && (90...110).contains(counts["C"] ?? 0), "\(counts)")
        let rows = try Self.serverRows(server.port)
        #expect(rows.count == 3 && rows.allSatisfy { $0["up"] as? Bool == true })
        #expect(rows.map { $0["requests"] as? Int ?? 0 } == [counts["A"] ?? 0, counts["B"] ?? 0, counts["C"] ?? 0], "\(rows)")
    }

    /// (Not sync: its two workers are held by the load's four kept connections, so the
    /// status page this test polls would wait for one of them to end.)
    @Test("kill -9 of one server, then a stop of another, under load: no GET fails; both come back", arguments: ["thread", "epoll"])
    func faults(workerClass: String) throws {
        let backends = try [("127.0.0.2", "A"), ("127.0.0.3", "B"), ("127.0.0.4", "C")].map { try Backend(host: $0.0, c: true, label: $0.1) }
        // backend_read 2 s: a request caught in a server's stop (libfcgi finishes a TERM
        // only at its next accept) times out and is tried on another server in time.
        let config = """
            [timeouts]
            backend_read = 2
            [[app]]
            name = "pool"
            servers = [\(Self.servers(backends, weights: [1, 1, 1], maxConns: 2))]
            max_fails = 2
            fail_timeout = 1
            [[route]]
            path = "/c"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"\nkeepalive = 2\nthreads = 4", workers: 2,
                                        workerClass: workerClass)
        defer { server.stop() }
        let load = try DrainTests.Load(port: server.port, path: "/c/hello")
        usleep(500_000)
        let killed = Date()
        backends[0].stop(SIGKILL)
        var markedDown: Double? = nil
        let deadline = Date().addingTimeInterval(5)
        while markedDown == nil && Date() < deadline {
            if let rows = try? Self.serverRows(server.port), rows.first?["up"] as? Bool == false { markedDown = Date().timeIntervalSince(killed) }
            usleep(10_000)
        }
        #expect(markedDown != nil, "server A was never marked down: \(server.errorLog)")
        backends[1].stop(SIGTERM)
        usleep(1_000_000)
        try backends[0].start()
        try backends[1].start()
        // Back: after fail_timeout each is tried again, and answers.
        let before = try Self.serverRows(server.port).map { $0["requests"] as? Int ?? 0 }
        var back = false
        let comeBack = Date().addingTimeInterval(10)
        while !back && Date() < comeBack {
            usleep(200_000)
            let rows = try Self.serverRows(server.port)
            let now = rows.map { $0["requests"] as? Int ?? 0 }
            back = rows.allSatisfy { $0["up"] as? Bool == true } && now[0] > before[0] + 5 && now[1] > before[1] + 5
        }
        let result = try load.finish()
        let finalRows = (try? Self.serverRows(server.port)) ?? []
        #expect(back, "\(finalRows)")
        #expect(result.failures == 0, "\(workerClass): \(result.errors) \(DrainTests.loudLines(server.errorLog).filter { !$0.contains("trying another server") }.suffix(12))")
        #expect(result.requests > 200)
        #expect(server.errorLog.contains("marked down for 1.000 s (max_fails 2, fail_timeout 1.0 s)"), "\(server.errorLog)")
        print("scale-out \(workerClass): \(result.requests) requests, \(result.failures) failed; kill -9 to mark-down \(Int((markedDown ?? -1) * 1000)) ms")
    }
}
