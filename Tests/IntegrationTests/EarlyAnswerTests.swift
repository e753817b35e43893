import Foundation
import GatewaySystem
import Testing
import Glibc

/// An app that answers before it has read the request body, and closes its connection.
/// The client must get that answer (or a 502), and what it sent of the body after it must
/// never be read as a next request: the connection closes unless the body was read whole.
@Suite("An app's early answer to an upload", .serialized)
struct EarlyAnswerTests {
    @Test("the rest of the body is never parsed as a request", arguments: workerClasses)
    func earlyAnswer(workerClass: String) throws {
        signal(SIGPIPE, SIG_IGN)  // the server may close while we still send
        let f = try SecurityTests.Fixture()
        defer { f.stop() }
        let server = try GatewaydServer(config: f.config(), server: "keepalive = 1", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
        defer { try? fd.close() }
        try fd.setNonBlocking(true)
        let length = 4 << 20
        // The body looks like requests, so a server that parsed it would answer them.
        let filler = Array("GET /m/smuggled HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var body: [UInt8] = []
        while body.count < length { body += filler }
        let out = Array("POST /m/early HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\r\n".utf8) + body.prefix(length)
        var sent = 0
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var closed = false
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !closed {
            if sent < out.count, let n = try? fd.write(out, from: sent) { sent += n }
            if (try? fd.waitReadable(timeoutMilliseconds: 20)) == true {
                do {
                    if let n = try fd.read(into: &chunk, from: 0) {
                        if n == 0 { closed = true } else { got += chunk[0..<n] }
                    }
                } catch {
                    closed = true  // a reset: the server closed with our bytes unread
                }
            }
        }
        let text = String(decoding: got, as: UTF8.self)
        #expect(closed, "\(workerClass): the server kept the connection past its keepalive")
        #expect(text.hasPrefix("HTTP/1.1 413") || text.hasPrefix("HTTP/1.1 502"), "\(workerClass): \(text.prefix(200))")
        #expect(!text.contains("smuggled") && !text.contains("HTTP/1.1 400") && !text.contains("HTTP/1.1 404"),
                "\(workerClass): the body was read as requests: \(text.prefix(400))")
    }
}
