import Foundation
import GatewaySystem
import Testing
import Glibc
import Synchronization

/// Slow request bodies hold nothing (issue #8 F): the thread worker takes every body in
/// its loop before a thread is involved, and every class ends a body that trickles past
/// timeouts.body_total with 408.
@Suite("Slow request bodies")
struct SlowBodyTests {
    static let config = """
        [[route]]
        path = "/cgi-bin"
        cgi = "\(repositoryRoot)/apps/cgi"
        [[route]]
        path = "/"
        static = "\(repositoryRoot)/apps/static"
        [cgi]
        interpreters = { ".py" = "python3" }
        """

    /// Sends `head`, then `body` in `pieces` pieces `gap` seconds apart (waiting for the
    /// 100 Continue first when asked), then reads the response.
    static func slowUpload(_ port: Int, head: String, body: [UInt8], pieces: Int, gap: Double, waitFor100: Bool = false) throws -> String {
        signal(SIGPIPE, SIG_IGN)  // the server may answer (408) and close while we still send
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
        defer { try? fd.close() }
        try fd.writeAll(Array(head.utf8))
        if waitFor100 {
            var got: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 256)
            let deadline = Date().addingTimeInterval(5)
            while !String(decoding: got, as: UTF8.self).contains("\r\n\r\n") && Date() < deadline {
                guard try fd.waitReadable(timeoutMilliseconds: 100), let n = try fd.read(into: &chunk, from: 0), n > 0 else { continue }
                got += chunk[0..<n]
            }
            guard String(decoding: got, as: UTF8.self).hasPrefix("HTTP/1.1 100") else { return "no 100 Continue: " + String(decoding: got, as: UTF8.self) }
        }
        let size = (body.count + pieces - 1) / pieces
        var i = 0
        while i < body.count {
            let n = min(size, body.count - i)
            do { try fd.writeAll(Array(body[i..<(i + n)])) } catch { break }  // answered early (408): stop sending
            i += n
            usleep(UInt32(gap * 1_000_000))
        }
        return String(decoding: try readAll(fd, timeout: 20), as: UTF8.self)
    }

    static func chunked(_ body: [UInt8], pieces: Int) -> [UInt8] {
        let size = (body.count + pieces - 1) / pieces
        var out: [UInt8] = []
        var i = 0
        while i < body.count {
            let n = min(size, body.count - i)
            out += Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [13, 10]
            i += n
        }
        return out + Array("0\r\n\r\n".utf8)
    }

    @Test("thread worker: four slow uploads (chunked, Expect, large) hold none of its two threads")
    func slowUploadsHoldNoThread() throws {
        let server = try GatewaydServer(config: Self.config, server: "threads = 2", workers: 1, workerClass: "thread")
        defer { server.stop() }
        let port = server.port
        let large = (0..<(200 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let small = Array("name=value&x=1".utf8)
        let results = Results()
        let uploads: [(String, [UInt8], Bool, [UInt8])] = [
            ("POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n", Self.chunked(small, pieces: 14), false, small),
            ("POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", Self.chunked(large, pieces: 20), true, large),
            ("POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(large.count)\r\n\r\n", large, false, large),
            ("POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(small.count)\r\nExpect: 100-continue\r\n\r\n", small, true, small),
        ]
        var threads: [Thread] = []
        for (i, u) in uploads.enumerated() {
            let t = Thread {
                let r = (try? Self.slowUpload(port, head: u.0, body: u.1, pieces: 14, gap: 0.2, waitFor100: u.2)) ?? "failed"
                results.set(i, r)
            }
            t.start()
            threads.append(t)
        }
        usleep(600_000)  // all four are trickling now
        for _ in 0..<5 {
            let t0 = Date()
            let r = try http(port, "GET", "/", timeout: 5)
            #expect(r.status == 200)
            #expect(Date().timeIntervalSince(t0) < 1.0, "a GET waited \(Date().timeIntervalSince(t0)) s behind slow uploads")
            usleep(100_000)
        }
        while threads.contains(where: { !$0.isFinished }) { usleep(50_000) }
        for (i, u) in uploads.enumerated() {
            let text = results.get(i)
            #expect(text.hasPrefix("HTTP/1.1 200") || text.contains("\r\n\r\nHTTP/1.1 200"), "upload \(i): \(text.prefix(200))")
            #expect(text.contains("\"body_sha256\": \"\((try? sha256Hex(u.3)) ?? "?")\""), "upload \(i) arrived whole")
        }
    }

    @Test("a body that trickles past timeouts.body_total gets 408", arguments: workerClasses)
    func bodyTotal(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config + "\n[timeouts]\nbody = 10\nbody_total = \"1s\"\n", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let body = [UInt8](repeating: 65, count: 40)
        let t0 = Date()
        let text = try Self.slowUpload(server.port, head: "POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n",
                                       body: body, pieces: 40, gap: 0.1)
        #expect(text.hasPrefix("HTTP/1.1 408"), "\(workerClass): \(text.prefix(120))")
        #expect(Date().timeIntervalSince(t0) < 3.5)
        // A body that arrives in time still goes through.
        let ok = try Self.slowUpload(server.port, head: "POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 40\r\n\r\n",
                                     body: body, pieces: 4, gap: 0.1)
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(workerClass): \(ok.prefix(120))")
    }
}

/// Results written by several threads.
final class Results: Sendable {
    private let values = Mutex<[Int: String]>([:])
    func set(_ i: Int, _ v: String) { values.withLock { $0[i] = v } }
    func get(_ i: Int) -> String { values.withLock { $0[i] ?? "" } }
}
