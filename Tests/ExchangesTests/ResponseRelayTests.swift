import Testing
import FastCGIWire
import HTTPWire
@testable import Exchanges

/// The FastCGI response relay, fed whole and one byte at a time: the same client bytes
/// and the same notes either way.
@Suite("FastCGI response relay")
struct ResponseRelayTests {
    static func request(_ method: String = "GET") -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/app/x", version: HTTPVersion(major: 1, minor: 1), headers: HTTPHeaders(),
                        keepAlive: true, expectContinue: false, framing: .none, host: "h")
    }

    static func records(id: UInt16, stdout: String, stderr: String = "", appStatus: UInt32 = 0) -> [UInt8] {
        var out: [UInt8] = []
        if !stderr.isEmpty { Array(stderr.utf8).withUnsafeBytes { FastCGIEncoder.appendStream(.stderr, requestID: id, bytes: $0, into: &out) } }
        Array(stdout.utf8).withUnsafeBytes { FastCGIEncoder.appendStream(.stdout, requestID: id, bytes: $0, into: &out) }
        FastCGIEncoder.appendEndOfStream(.stdout, requestID: id, into: &out)
        let end: [UInt8] = [UInt8(appStatus >> 24), UInt8(appStatus >> 16 & 0xFF), UInt8(appStatus >> 8 & 0xFF), UInt8(appStatus & 0xFF), 0, 0, 0, 0]
        end.withUnsafeBytes { FastCGIEncoder.appendRecord(.endRequest, requestID: id, content: $0, into: &out) }
        return out
    }

    static func relay(_ input: [UInt8], id: UInt16 = 1, method: String = "GET", step: Int, mayKeepAlive: Bool = true)
        throws(UpstreamError) -> (String, ResponseRelay, [ExchangeNote]) {
        var r = ResponseRelay(request: request(method), requestID: id, maxHeadSize: 8192, keepAlive: true)
        var out: [UInt8] = []
        var notes: [ExchangeNote] = []
        var i = 0
        while i < input.count {
            let j = min(input.count, i + step)
            try r.receive(input[i..<j], into: &out, mayKeepAlive: mayKeepAlive, date: "D", notes: &notes)
            i = j
        }
        return (String(decoding: out, as: UTF8.self), r, notes)
    }

    @Test(arguments: [1, 7, 100_000])
    func contentLengthBodyAndStderrNotes(step: Int) throws {
        let input = Self.records(id: 1, stdout: "Status: 201 Made\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok", stderr: "one\ntwo\n", appStatus: 3)
        let (text, r, notes) = try Self.relay(input, step: step)
        #expect(text.hasPrefix("HTTP/1.1 201 Made\r\n"))
        #expect(text.contains("X-A: b\r\n") && text.contains("Content-Length: 2\r\n") && text.hasSuffix("\r\n\r\nok"))
        #expect(r.ended && r.reusable && r.keepAlive && r.status == 201)
        #expect(notes == [ExchangeNote(.warning, "app stderr: one"), ExchangeNote(.warning, "app stderr: two"),
                          ExchangeNote(.debug, "app exit status 3")])
    }

    @Test func drainingClosesTheClientConnection() throws {
        let (text, r, _) = try Self.relay(Self.records(id: 1, stdout: "Content-Type: text/plain\r\n\r\nhi"), step: 1000, mayKeepAlive: false)
        #expect(text.contains("Connection: close\r\n"))
        #expect(!r.keepAlive)
    }

    @Test func shortBodyIsNotedAndCloses() throws {
        let (_, r, notes) = try Self.relay(Self.records(id: 1, stdout: "Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc"), step: 1000)
        #expect(!r.keepAlive)
        #expect(notes.contains(ExchangeNote(.error, "app sent 3 body bytes but Content-Length 10")))
    }

    @Test func localRedirectIsFollowedNotSent() throws {
        let (text, r, _) = try Self.relay(Self.records(id: 1, stdout: "Location: /other\r\n\r\nignored"), step: 3)
        #expect(text.isEmpty)
        #expect(r.redirect == "/other" && r.ended)
    }

    @Test("X-Accel-Redirect and X-Sendfile hand the response over; the body is dropped, the kept fields travel", arguments: [1, 5, 1000])
    func offloadIsHandedOverNotSent(step: Int) throws {
        let head = "Content-Type: application/zip\r\nContent-Disposition: attachment\r\nX-Other: no\r\nSet-Cookie: a=1\r\n"
        let (text, r, _) = try Self.relay(Self.records(id: 1, stdout: head + "X-Accel-Redirect: /protected/a.zip\r\n\r\ndropped"), method: "POST", step: step)
        #expect(text.isEmpty && r.ended && r.reusable)
        #expect(r.offload?.target == .uri("/protected/a.zip"))
        #expect(r.offload?.fields.map(\.name) == ["Content-Type", "Content-Disposition", "Set-Cookie"])
        #expect(r.offload?.contentType == "application/zip")
        let (sent, s, _) = try Self.relay(Self.records(id: 1, stdout: "Content-Type:\r\nX-Sendfile: /srv/f.txt\r\n\r\n"), step: step)
        #expect(sent.isEmpty && s.offload == Offload(target: .file("/srv/f.txt")))
        // An empty X-Accel-Redirect (a framework clearing it) is an ordinary answer.
        let (plain, p, _) = try Self.relay(Self.records(id: 1, stdout: "X-Accel-Redirect:\r\nContent-Type: text/plain\r\n\r\nhi"), step: step)
        #expect(p.offload == nil && p.body?.sent == 2 && !plain.isEmpty)
    }

    @Test("a late record of the last request id is skipped; the connection is not reused", arguments: [1, 1000])
    func strayRecordsOfTheLastRequest(step: Int) throws {
        let input = Self.records(id: 1, stdout: "Content-Type: text/plain\r\n\r\nCROSSED\n") + Self.records(id: 2, stdout: "Content-Type: text/plain\r\n\r\nmine\n")
        let (text, r, notes) = try Self.relay(input, id: 2, step: step)
        // Byte by byte, each STDOUT byte is a chunk of its own: compare counts and letters.
        #expect(r.body?.sent == 5 && !text.contains("CROSSED") && !text.contains("C\r\n"))
        #expect(r.ended && !r.reusable)
        #expect(notes.contains { $0.level == .warning && $0.message.contains("after its END_REQUEST") })
    }

    @Test func overloadedBeforeOutputIsThrown() {
        var out: [UInt8] = []
        let end: [UInt8] = [0, 0, 0, 0, 2, 0, 0, 0]
        end.withUnsafeBytes { FastCGIEncoder.appendRecord(.endRequest, requestID: 1, content: $0, into: &out) }
        #expect(throws: UpstreamError.overloaded) { _ = try Self.relay(out, step: 1000) }
    }
}
