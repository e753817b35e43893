import Foundation
import GatewaySystem
import Testing
import Glibc

/// What a client sees of the HTTP side, byte for byte, under every worker class: bad
/// framing, pipelining, Expect: 100-continue, the body limit, a client that reads
/// slowly, and one that leaves while its request waits for the app.
@Suite("HTTP front, under every worker class", .serialized)
struct HTTPFrontTests {
    static let config = appConfig()

    static func appConfig(_ extra: String = "") -> String {
        """
        [limits]
        max_body_size = "1M"
        [[app]]
        name = "c"
        command = ["\(repositoryRoot)/apps/bin/c-app"]
        processes = 2
        \(extra)
        [[route]]
        path = "/c"
        app = "c"
        """
    }

    static func connect(_ port: Int) throws -> FileDescriptor {
        try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
    }

    static func send(_ fd: FileDescriptor, _ text: String) throws {
        try fd.writeAll(Array(text.utf8))
    }

    @Test(arguments: workerClasses)
    func ambiguousFramingIs400AndTheConnectionCloses(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Self.connect(server.port)
        defer { try? fd.close() }
        try Self.send(fd, "POST /c/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        let reply = String(decoding: try readAll(fd, timeout: 5), as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
        #expect(reply.contains("Connection: close"))
        #expect(count("HTTP/1.1", in: Array(reply.utf8)) == 1, "nothing after the 400: \(reply)")
    }

    @Test(arguments: workerClasses)
    func pipelinedRequestsAreAnsweredInOrder(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Self.connect(server.port)
        defer { try? fd.close() }
        try Self.send(fd, "GET /c/status?code=201 HTTP/1.1\r\nHost: x\r\n\r\n"
                          + "GET /c/status?code=202 HTTP/1.1\r\nHost: x\r\n\r\n"
                          + "GET /c/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reply = String(decoding: try readAll(fd, timeout: 5), as: UTF8.self)
        let statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["201", "202", "200"], "\(reply)")
    }

    @Test(arguments: workerClasses)
    func expectContinueIsAnsweredBeforeTheBody(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Self.connect(server.port)
        defer { try? fd.close() }
        try Self.send(fd, "POST /c/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        var interim = [UInt8](repeating: 0, count: 256)
        #expect(try fd.waitReadable(timeoutMilliseconds: 5000))
        let n = try fd.read(into: &interim, from: 0) ?? 0
        #expect(String(decoding: interim[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"))
        try Self.send(fd, "hello")
        let rest = String(decoding: interim[0..<n] + (try readAll(fd, timeout: 5)), as: UTF8.self)
        #expect(rest.contains("HTTP/1.1 200"), "\(rest)")
        #expect(rest.contains("\"length\":5"), "\(rest)")
    }

    @Test(arguments: workerClasses)
    func aBodyOverTheLimitIs413(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Self.connect(server.port)
        defer { try? fd.close() }
        try Self.send(fd, "POST /c/echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(2 << 20)\r\n\r\n")
        let reply = String(decoding: try readAll(fd, timeout: 5), as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 413"), "\(reply)")
    }

    /// 64 MiB from the app to a client that reads nothing for 2 s: the worker must stop
    /// reading the app rather than hold the response (a blocking worker simply blocks).
    @Test(arguments: workerClasses)
    func aSlowReaderDoesNotMakeTheWorkerBufferTheResponse(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        _ = try http(server.port, "GET", "/c/hello")
        let worker = try #require(server.workerPIDs().first)
        let before = memoryKiB(worker).rss
        let fd = try Self.connect(server.port)
        defer { try? fd.close() }
        let size = 64 << 20
        try Self.send(fd, "GET /c/stream?bytes=\(size) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        usleep(2_000_000)
        let stalled = memoryKiB(worker).rss
        #expect(stalled - before < 16 * 1024, "worker RSS grew by \(stalled - before) KiB while its client read nothing")
        // Then the client reads it all: every byte arrives.
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try fd.waitReadable(timeoutMilliseconds: 5000), let n = try fd.read(into: &chunk, from: 0), n > 0 {
            total += n
        }
        #expect(total > size, "read \(total) bytes (head and chunk framing included)")
    }

    /// A client that leaves while its request waits in the queue or at the app costs
    /// nothing afterwards: both slots serve the next requests.
    @Test(arguments: workerClasses)
    func aClientThatLeavesFreesItsPlace(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.appConfig("queue_timeout = \"10s\""), server: "status_path = \"/status\"",
                                        workers: 1, workerClass: workerClass)
        defer { server.stop() }
        for _ in 0..<4 {
            let fd = try Self.connect(server.port)
            try Self.send(fd, "GET /c/sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
            usleep(20_000)
            try? fd.close()
        }
        usleep(1_500_000)  // what the app was doing for them is over (a sync worker serves all 4)
        let t = Date()
        let results = (0..<2).map { _ in try? http(server.port, "GET", "/c/hello", timeout: 5) }
        #expect(results.allSatisfy { $0?.status == 200 }, "\(results.map { $0?.status ?? 0 })")
        #expect(Date().timeIntervalSince(t) < 1, "a slot was still held for a client that left")
    }
}
