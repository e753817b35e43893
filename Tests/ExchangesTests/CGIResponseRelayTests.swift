import Testing
import CGIProtocol
import HTTPWire
@testable import Exchanges

/// The CGI output relay, fed whole and one byte at a time (h11's habit): the same bytes
/// must come out either way.
@Suite("CGI response relay")
struct CGIResponseRelayTests {
    static func request(_ method: String = "GET", minor: Int = 1) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/cgi-bin/x", version: HTTPVersion(major: 1, minor: minor), headers: HTTPHeaders(),
                        keepAlive: true, expectContinue: false, framing: .none, host: "h")
    }

    /// Feeds `output` in pieces of `step` bytes, then ends it; the client's bytes.
    static func relay(_ output: String, method: String = "GET", minor: Int = 1, nph: Bool = false, step: Int) throws -> (String, CGIResponseRelay) {
        var r = CGIResponseRelay(request: request(method, minor: minor), nph: nph, maxHeadSize: 256, keepAlive: true)
        var out: [UInt8] = []
        let bytes = Array(output.utf8)
        var i = 0
        while i < bytes.count {
            try r.receive(bytes[i..<min(i + step, bytes.count)], into: &out, date: "D", draining: false)
            i += step
        }
        _ = try r.finish(into: &out)
        return (String(decoding: out, as: UTF8.self), r)
    }

    /// The body of a chunked response (however it was cut into chunks).
    static func dechunk(_ response: String) -> String? {
        let b = Array(response.utf8)
        func crlf(from i: Int) -> Int? { (i..<max(i, b.count - 1)).first { b[$0] == 13 && b[$0 + 1] == 10 } }
        var i = 0
        while let e = crlf(from: i), e > i { i = e + 2 }  // status line and fields
        guard let headEnd = crlf(from: i), headEnd == i else { return nil }
        i += 2
        var body: [UInt8] = []
        while let e = crlf(from: i), let size = Int(String(decoding: b[i..<e], as: UTF8.self), radix: 16) {
            if size == 0 { return String(decoding: body, as: UTF8.self) }
            body += b[(e + 2)..<(e + 2 + size)]
            i = e + 2 + size + 2
        }
        return nil
    }

    @Test(arguments: [1, 3, 1000])
    func documentIsChunkedForHTTP11(step: Int) throws {
        let (out, r) = try Self.relay("Content-Type: text/plain\nStatus: 201 Made\n\nhello", step: step)
        #expect(out.hasPrefix("HTTP/1.1 201 Made\r\n"))
        #expect(out.contains("Transfer-Encoding: chunked\r\n"))
        #expect(Self.dechunk(out) == "hello")
        #expect(out.hasSuffix("\r\n0\r\n\r\n"))
        #expect(r.keepAlive && r.status == 201)
    }

    @Test(arguments: [1, 1000])
    func contentLengthIsKeptAndHTTP10ClosesAfterABodyOfUnknownLength(step: Int) throws {
        let (out, _) = try Self.relay("Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello and more", step: step)
        #expect(out.contains("Content-Length: 5\r\n") && out.hasSuffix("\r\n\r\nhello"))
        let (old, r) = try Self.relay("Content-Type: text/plain\n\nbye", minor: 0, step: step)
        #expect(old.hasSuffix("\r\n\r\nbye") && !r.keepAlive)
    }

    @Test func headGetsNoBody() throws {
        let (out, _) = try Self.relay("Content-Type: text/plain\n\nhello", method: "HEAD", step: 2)
        #expect(out.hasSuffix("\r\n\r\n"))
        #expect(!out.contains("hello"))
    }

    @Test func localRedirectIsNotSent() throws {
        let (out, r) = try Self.relay("Location: /other?x=1\n\nignored", step: 1)
        #expect(out.isEmpty && r.redirect == "/other?x=1")
        let (client, c) = try Self.relay("Location: https://example.com/\n\n", step: 1)
        #expect(client.hasPrefix("HTTP/1.1 302 ") && c.redirect == nil)
    }

    @Test func offloadIsNotSent() throws {
        let (out, r) = try Self.relay("X-Sendfile: /srv/a.bin\nContent-Type: text/x-a\n\nignored", step: 3)
        #expect(out.isEmpty && r.offload == Offload(target: .file("/srv/a.bin"), fields: [.init("Content-Type", "text/x-a")]))
        var o: [UInt8] = []
        var relay = r
        #expect(try relay.finish(into: &o) == nil && o.isEmpty)
    }

    @Test(arguments: [1, 1000])
    func nphPassesThroughAndCloses(step: Int) throws {
        let raw = "HTTP/1.0 299 Odd\r\nX: y\r\n\r\nbody"
        let (out, r) = try Self.relay(raw, nph: true, step: step)
        #expect(out == raw && r.status == 299 && !r.keepAlive)
    }

    @Test("bad output is an error, never forwarded", arguments: [
        "no colon here\n\n", "Content-Type: a\r\nX: b\u{0}c\n\n", "X-Only: 1\n\n", "Status: 99 Low\n\n",
    ])
    func badHeads(output: String) {
        #expect(throws: CGIResponseError.self) { _ = try Self.relay(output, step: 1) }
    }

    @Test func truncatedOrSilentOutputIsAnError() {
        #expect(throws: CGIResponseError.self) { _ = try Self.relay("", step: 1) }
        #expect(throws: CGIResponseError.self) { _ = try Self.relay("Content-Type: text/plain\n", step: 1) }
        #expect(throws: CGIResponseError.self) { _ = try Self.relay("Content-Type: " + String(repeating: "x", count: 300), step: 7) }
    }
}
