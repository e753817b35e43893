import Foundation
import GatewaySystem
import Testing
import Glibc
import Synchronization

/// The master's watch over a connect app's servers (real flup servers on other loopback
/// addresses): health probes bring a down server back long before fail_timeout and take
/// a sick one out, capacities are learned from FCGI_GET_VALUES, and a host name is
/// looked up again while gatewayd runs.
@Suite("health probes, learned capacity, name lookups", .serialized)
struct ServerWatchTests {
    typealias Backend = ScaleOutTests.Backend

    static func rows(_ server: GatewaydServer) -> [[String: Any]] {
        (try? ScaleOutTests.serverRows(server.port)) ?? []
    }

    static func up(_ server: GatewaydServer) -> [Bool] {
        rows(server).map { $0["up"] as? Bool ?? false }
    }

    static func whoami(_ server: GatewaydServer, _ n: Int) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<n {
            let r = try http(server.port, "GET", "/py/whoami")
            #expect(r.status == 200, "\(r.status) \(r.text)")
            counts[String(r.text.split(separator: " ").first ?? "?"), default: 0] += 1
        }
        return counts
    }

    @Test("a killed server is marked down by its probe and back at the first good probe, not after fail_timeout",
          arguments: ["epoll", "thread"])
    func probeBringsBack(workerClass: String) throws {
        let backends = try [("127.0.0.2", "A"), ("127.0.0.3", "B"), ("127.0.0.4", "C")].map { try Backend(host: $0.0, c: false, label: $0.1) }
        // fail_timeout 60 s: only a probe can bring a server back within this test.
        let config = """
            [[app]]
            name = "pool"
            servers = [\(ScaleOutTests.servers(backends, weights: [1, 1, 1], maxConns: 1))]
            max_fails = 2
            fail_timeout = 60
            health_interval = 0.3
            [[route]]
            path = "/py"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"", workers: 2, workerClass: workerClass)
        defer { server.stop() }
        #expect(Set(try Self.whoami(server, 30).keys) == ["A", "B", "C"])
        let killed = Date()
        backends[1].stop(SIGKILL)
        // No request is sent: only the probes can see it.
        #expect(HostedAppsTests.eventually(5) { Self.up(server) == [true, false, true] }, "\(Self.rows(server))")
        let markedDown = Date().timeIntervalSince(killed)
        #expect(Set(try Self.whoami(server, 30).keys) == ["A", "C"])
        try backends[1].start()
        let restarted = Date()
        #expect(HostedAppsTests.eventually(5) { Self.up(server) == [true, true, true] }, "\(Self.rows(server)) \(server.errorLog)")
        let back = Date().timeIntervalSince(restarted)
        #expect(try Self.whoami(server, 30)["B"] ?? 0 > 0)
        #expect(server.errorLog.contains("app pool: server \(backends[1].address): health probe failed (connect: "), "\(server.errorLog)")
        #expect(server.errorLog.contains("app pool: server \(backends[1].address) answered its health probe; back in use"))
        let failures = Self.rows(server)[1]["failures"] as? Int ?? 0
        #expect(failures >= 2)
        print("health probes \(workerClass): kill -9 to mark-down by probe \(Int(markedDown * 1000)) ms, restart to back \(Int(back * 1000)) ms (fail_timeout 60 s)")
    }

    @Test("health_path: a server whose app answers 503 is taken out while its socket still accepts, and back when it answers 200")
    func healthPath() throws {
        let sick = NSTemporaryDirectory() + "gatewayd-sick-\(getpid())"
        defer { unlink(sick) }
        let backends = try [("127.0.0.2", "A"), ("127.0.0.3", "B")].map {
            try Backend(host: $0.0, c: false, label: $0.1, environment: ["APP_SICK_FILE=" + sick + $0.1])
        }
        let config = """
            [[app]]
            name = "pool"
            servers = [\(ScaleOutTests.servers(backends, weights: [1, 1], maxConns: 1))]
            max_fails = 2
            fail_timeout = 60
            health_interval = 0.3
            health_path = "/py/health"
            [[route]]
            path = "/py"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"", workers: 1, workerClass: "epoll")
        defer { server.stop() }
        #expect(Set(try Self.whoami(server, 10).keys) == ["A", "B"])
        FileManager.default.createFile(atPath: sick + "B", contents: nil)
        #expect(HostedAppsTests.eventually(5) { Self.up(server) == [true, false] }, "\(Self.rows(server))")
        #expect(try Self.whoami(server, 20) == ["A": 20])
        #expect(server.errorLog.contains("health probe failed (answered 503)"), "\(server.errorLog)")
        unlink(sick + "B")
        #expect(HostedAppsTests.eventually(5) { Self.up(server) == [true, true] }, "\(Self.rows(server))")
        #expect(try Self.whoami(server, 20)["B"] ?? 0 > 0)
    }

    @Test("a server without max_conns is given what it says in FCGI_GET_VALUES")
    func learnedCapacity() throws {
        let threaded = try Backend(host: "127.0.0.2", c: false, label: "T", arguments: ["--threads", "3"])
        let single = try Backend(host: "127.0.0.3", c: false, label: "S")
        let config = """
            [[app]]
            name = "pool"
            servers = [{ address = "\(threaded.address)" }, { address = "\(single.address)" }]
            health_interval = 0.5
            [[route]]
            path = "/py"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"\nmetrics_path = \"/metrics\"", workers: 2,
                                        workerClass: "epoll")
        defer { server.stop() }
        #expect(HostedAppsTests.eventually(5) { Self.rows(server).map { $0["connections"] as? Int ?? 0 } == [3, 1] }, "\(Self.rows(server))")
        #expect(Self.rows(server).map { $0["says_it_takes"] as? Int ?? 0 } == [3, 1])
        let metrics = try http(server.port, "GET", "/metrics").text
        #expect(metrics.contains("gatewayd_app_server_connections{app=\"pool\",server=\"\(threaded.address)\"} 3"), "\(metrics)")
        // Six slow requests at once: the threaded server holds 3, the single one 1, and
        // the rest wait in gatewayd's queue (none in a server's backlog). (The status
        // page is read while they run: never more than that in flight on either.)
        // (Threads of their own: the global queue runs about one per core.)
        let statuses = Mutex<[Int]>([])
        for _ in 0..<6 {
            Thread.detachNewThread {
                let s = (try? http(server.port, "GET", "/py/sleep?ms=2000").status) ?? 0
                statuses.withLock { $0.append(s) }
            }
        }
        var mostInFlight = [0, 0]
        let until = Date().addingTimeInterval(3)
        while Date() < until && mostInFlight != [3, 1] {
            let inFlight = Self.rows(server).map { $0["in_flight"] as? Int ?? 0 }
            if inFlight.count == 2 { mostInFlight = zip(mostInFlight, inFlight).map { max($0, $1) } }
            usleep(20_000)
        }
        #expect(HostedAppsTests.eventually(10) { statuses.withLock { $0.count } == 6 })
        #expect(statuses.withLock { $0 } == Array(repeating: 200, count: 6), "\(server.errorLog)")
        #expect(mostInFlight == [3, 1], "\(mostInFlight)")
        #expect(server.errorLog.contains("app pool: server \(threaded.address) says it takes 3 at once"), "\(server.errorLog)")
    }

    @Test("a host name is looked up again every resolve_interval: a changed /etc/hosts line needs no restart")
    func nameLookup() throws {
        let hosts = "/etc/hosts"
        guard let original = FileManager.default.contents(atPath: hosts), access(hosts, W_OK) == 0 else {
            print("SKIPPED: /etc/hosts is not writable here (the test needs root to point a name at another address)")
            return
        }
        let name = "gatewayd-test-\(getpid()).internal"
        func point(to address: String) {
            let line = "\(address) \(name)\n"
            let fd = open(hosts, O_WRONLY | O_TRUNC)
            let bytes = Array(original) + Array(line.utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        defer {
            let fd = open(hosts, O_WRONLY | O_TRUNC)
            _ = original.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let port = try freePort()
        let a = try Backend(host: "127.0.0.2", c: false, label: "A", port: port)
        let b = try Backend(host: "127.0.0.3", c: false, label: "B", port: port)
        _ = (a, b)
        point(to: "127.0.0.2")
        let config = """
            [[app]]
            name = "pool"
            connect = "\(name):\(port)"
            max_conns = 2
            resolve_interval = 0.3
            [[route]]
            path = "/py"
            app = "pool"
            """
        let server = try GatewaydServer(config: config, workers: 2, workerClass: "thread")
        defer { server.stop() }
        #expect(try Self.whoami(server, 10) == ["A": 10])
        point(to: "127.0.0.3")
        #expect(HostedAppsTests.eventually(5) { (try? Self.whoami(server, 2)) == ["B": 2] })
        #expect(try Self.whoami(server, 10) == ["B": 10])
        #expect(server.errorLog.contains("\(name) now resolves to 127.0.0.3"), "\(server.errorLog)")
    }
}
