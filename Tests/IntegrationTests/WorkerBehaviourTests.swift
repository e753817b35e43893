import Foundation
import Testing
import Glibc
import GatewaySystem

/// Reads from `fd` until EOF or `timeout`; returns what arrived.
func readAll(_ fd: FileDescriptor, timeout: Double) throws -> [UInt8] {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        guard try fd.waitReadable(timeoutMilliseconds: 100) else { continue }
        guard let n = try fd.read(into: &chunk, from: 0), n > 0 else { break }
        data += chunk[0..<n]
    }
    return data
}

func count(_ needle: String, in data: [UInt8]) -> Int {
    String(decoding: data, as: UTF8.self).components(separatedBy: needle).count - 1
}

@Suite("worker behaviour, under every worker class", .serialized)
struct WorkerBehaviourTests {
    @Test(arguments: workerClasses)
    func keepAliveServesSeveralRequestsOnOneConnection(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "keepalive = 2", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        defer { try? fd.close() }
        let get = "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"
        try fd.writeAll(Array((get + get + "GET /c/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").utf8))
        let data = try readAll(fd, timeout: 5)
        #expect(count("HTTP/1.1 200 OK", in: data) == 3, "pipelined requests on one connection")
        #expect(count("Connection: close", in: data) == 1)
    }

    @Test(arguments: workerClasses)
    func keepaliveZeroClosesAfterEachResponse(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "keepalive = 0", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        defer { try? fd.close() }
        let get = "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"
        try fd.writeAll(Array((get + get).utf8))
        let data = try readAll(fd, timeout: 5)
        #expect(count("HTTP/1.1 200 OK", in: data) == 1)
        #expect(count("Connection: close", in: data) == 1)
    }

    @Test(arguments: workerClasses)
    func aSlowClientGets408AndFreesTheWorker(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "[timeouts]\nheader = 1", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let slow = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        defer { try? slow.close() }
        try slow.writeAll(Array("GET /c/hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8))
        let t0 = Date()
        let data = try readAll(slow, timeout: 5)
        #expect(String(decoding: data, as: UTF8.self).hasPrefix("HTTP/1.1 408 "))
        #expect(Date().timeIntervalSince(t0) < 3)
        // The only worker is free again.
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
    }

    @Test(arguments: workerClasses)
    func maxRequestsRecyclesTheWorker(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "max_requests = 3\nmax_requests_jitter = 1", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let first = try #require(server.workerPIDs().first)
        for _ in 0..<8 { #expect(try http(server.port, "GET", "/c/hello").status == 200) }
        usleep(300_000)
        let now = try #require(server.workerPIDs().first)
        #expect(now != first)
        #expect(server.errorLog.contains("max_requests"))
    }

    @Test(arguments: workerClasses)
    func usr1ReopensLogFiles(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let dir = "/tmp/gatewayd-it-logs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try GatewaydServer(config: "[log]\naccess_log = \"\(dir)/access.log\"\nerror_log = \"\(dir)/error.log\"\n" + stack.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
        try FileManager.default.moveItem(atPath: dir + "/access.log", toPath: dir + "/access.log.1")
        server.signal(SIGUSR1)
        usleep(1_500_000)
        #expect(try http(server.port, "GET", "/c/hello?after").status == 200)
        usleep(200_000)
        let fresh = (try? String(contentsOfFile: dir + "/access.log", encoding: .utf8)) ?? ""
        #expect(fresh.contains("/c/hello?after"), "the request after USR1 goes to the new file")
        let rotated = (try? String(contentsOfFile: dir + "/access.log.1", encoding: .utf8)) ?? ""
        #expect(!rotated.contains("/c/hello?after"))
    }

    @Test(arguments: workerClasses)
    func workersExitWhenTheMasterDies(workerClass: String) throws {
        let server = try GatewaydServer(config: "", workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let workers = server.workerPIDs()
        #expect(workers.count == 2)
        kill(server.masterPID, SIGKILL)
        _ = server.waitForExit(timeout: 5)
        usleep(1_000_000)
        for w in workers {
            // Gone, or a zombie waiting for init to reap it.
            let state = (try? String(contentsOfFile: "/proc/\(w)/stat", encoding: .utf8))?.split(separator: " ")[2] ?? "X"
            #expect(state == "Z" || state == "X", "worker \(w) still running after the master died")
        }
    }

    @Test(arguments: workerClasses)
    func keptBackendConnectionsServeRequests(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let config = stack.config.replacingOccurrences(of: "connect = \"unix:\(stack.c.socketPath)\"",
                                                       with: "connect = \"unix:\(stack.c.socketPath)\"\nkeep_conn = true")
        let server = try GatewaydServer(config: config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        for i in 0..<10 {
            let r = try http(server.port, "GET", "/c/status?code=\(200 + i)")
            #expect(r.status == 200 + i)
        }
        // Bodiless requests on a kept connection, each followed by one with a streamed
        // body: once, libfcgi closed the kept connection in about 1 in 70 such pairs.
        let body = [UInt8](repeating: 7, count: 300_000)
        for _ in 0..<100 {
            #expect(try http(server.port, "GET", "/c/status?code=201").status == 201)
            let echo = try http(server.port, "POST", "/c/echo", body: body)
            #expect(echo.status == 200)
            #expect(try jsonObject(echo.body)["length"] as? Int == body.count)
        }
        #expect(!server.errorLog.contains("[ERROR]"), "\(server.errorLog)")
    }

    /// A frozen worker (SIGSTOP) stops its heartbeat: the master aborts and replaces it.
    @Test(arguments: workerClasses)
    func aSilentWorkerIsKilledAndReplaced(workerClass: String) throws {
        let server = try GatewaydServer(config: "", server: "timeout = 1", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let frozen = try #require(server.workerPIDs().first)
        kill(frozen, SIGSTOP)
        var replaced = false
        for _ in 0..<100 where !replaced {
            usleep(100_000)
            let now = server.workerPIDs()
            replaced = now.count == 1 && !now.contains(frozen)
        }
        #expect(replaced, "\(server.errorLog)")
        #expect(server.errorLog.contains("silent for"))
    }

    @Test(arguments: workerClasses)
    func intStopsFast(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let port = server.port
        let t = Thread { _ = try? http(port, "GET", "/py/sleep?ms=5000") }
        t.start()
        usleep(300_000)
        let t0 = Date()
        server.signal(SIGINT)
        #expect(server.waitForExit(timeout: 4) == 0)
        #expect(Date().timeIntervalSince(t0) < 3, "INT does not wait for the 5 s request")
    }
}
