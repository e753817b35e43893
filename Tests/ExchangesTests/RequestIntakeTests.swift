import Testing
import HTTPWire
@testable import Exchanges

/// The request intake on a fake clock: heads and bodies whole or a byte at a time, and
/// the deadline and the 408-or-close rule at each point of a connection's life.
@Suite("Request intake")
struct RequestIntakeTests {
    static let timeouts = RequestIntake.Timeouts(header: 10, keepalive: 2, body: 5, bodyTotal: 60)

    /// Feeds `bytes` as the driver would (consumed bytes dropped), collecting events.
    static func feed(_ intake: inout RequestIntake, _ buffer: inout [UInt8], _ bytes: [UInt8], now: Double) throws -> [String] {
        buffer += bytes
        var events: [String] = []
        while true {
            let (n, event) = try intake.next(buffer[...], now: now)
            switch event {
            case .head(let h):
                events.append("head \(h.method) \(h.target)")
                buffer.removeFirst(n)
                if h.framing != .none && h.framing != .contentLength(0) { intake.startBody(now: now) }
            case .body(let r):
                events.append("body " + String(decoding: buffer[r], as: UTF8.self))
                buffer.removeFirst(n)
            case .end:
                events.append("end")
                buffer.removeFirst(n)
            case .needMore:
                buffer.removeFirst(n)
                return events
            }
        }
    }

    @Test("a new connection: the head within `header`; idle until then, closed quietly")
    func newConnection() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 100)
        #expect(intake.deadline == 110)
        #expect(intake.expiry == .close)
        #expect(!intake.expired(at: 109.9) && intake.expired(at: 110))
    }

    @Test("a partial head: 408 at the header deadline from its first byte, whole or byte by byte")
    func slowHead() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
        var buffer: [UInt8] = []
        #expect(try Self.feed(&intake, &buffer, Array("GET /a HT".utf8), now: 3).isEmpty)
        #expect(intake.sawByte && intake.deadline == 13 && intake.expiry == .respond408)
        // More bytes do not move it: the whole head must be in within `header` of its first byte.
        #expect(try Self.feed(&intake, &buffer, Array("TP/1.1\r\nHost:".utf8), now: 8).isEmpty)
        #expect(intake.deadline == 13)
        #expect(try Self.feed(&intake, &buffer, Array(" h\r\n\r\n".utf8), now: 12) == ["head GET /a"])
        #expect(intake.deadline == .infinity, "while it is served, the exchange's deadlines rule")
    }

    @Test("a kept connection idles `keepalive`, then its next head has `header` from its first byte")
    func keptConnection() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
        var buffer: [UInt8] = []
        #expect(try Self.feed(&intake, &buffer, Array("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n".utf8), now: 1) == ["head GET /1"])
        intake.awaitNextRequest(now: 20)
        #expect(intake.deadline == 22 && intake.expiry == .close && !intake.sawByte)
        intake.capIdleDeadline { min($0, 20.5) }  // a drain
        #expect(intake.deadline == 20.5)
        #expect(try Self.feed(&intake, &buffer, Array("GET /2".utf8), now: 20.4).isEmpty)
        #expect(intake.deadline == 30.4 && intake.expiry == .respond408)
        intake.capIdleDeadline { min($0, 21) }
        #expect(intake.deadline == 30.4, "a request that has begun keeps its deadline through a drain")
    }

    @Test("pipelined requests come one head at a time; a bodiless message's end is skipped")
    func pipelined() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
        var buffer: [UInt8] = []
        let two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
        #expect(try Self.feed(&intake, &buffer, Array(two.utf8), now: 0) == ["head GET /1", "head GET /2"])
    }

    @Test("nextHead skips what is left of a body nobody read, and a drain's cap lowers only an idle deadline")
    func nextHeadAndCap() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0, capIdle: { min($0, 4) })
        #expect(intake.deadline == 4, "a new connection during a drain")
        let bytes = Array("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        let first = try intake.nextHead(bytes[...], now: 1)
        #expect(first.head?.target == "/a")
        let second = try intake.nextHead(bytes[first.consumed...], now: 1)
        #expect(second.head?.target == "/b" && first.consumed + second.consumed == bytes.count)
        intake.awaitNextRequest(now: 10, capIdle: { min($0, 11) })
        #expect(intake.deadline == 11)
        let none = try intake.nextHead(bytes[bytes.count...], now: 10)
        #expect(none.head == nil && none.consumed == 0 && intake.deadline == 11 && intake.expiry == .close)
    }

    @Test("a body: progress every `body`, whole within `bodyTotal`, chunked or not, whole or byte by byte")
    func body() throws {
        for chunked in [false, true] {
            for bytewise in [false, true] {
                var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
                var buffer: [UInt8] = []
                let head = chunked ? "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   : "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n"
                let body = chunked ? "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n" : "abcdef"
                var events = try Self.feed(&intake, &buffer, Array(head.utf8), now: 1)
                #expect(events == ["head POST /u"])
                #expect(intake.readingBody && intake.deadline == 6 && intake.expiry == .respond408)
                var t = 1.0
                for piece in bytewise ? Array(body.utf8).map({ [$0] }) : [Array(body.utf8)] {
                    t += 1
                    events += try Self.feed(&intake, &buffer, piece, now: t)
                    if !intake.readingBody { break }
                    #expect(intake.deadline == t + 5, "each read moves the body deadline")
                }
                let text = events.dropFirst().filter { $0.hasPrefix("body ") }.map { $0.dropFirst(5) }.joined()
                #expect(text == "abcdef" && events.last == "end", "\(events)")
                #expect(intake.deadline == .infinity && !intake.readingBody)
            }
        }
        // A trickle that keeps each read in time still ends at bodyTotal.
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
        var buffer: [UInt8] = []
        _ = try Self.feed(&intake, &buffer, Array("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n".utf8), now: 0)
        for t in stride(from: 4.0, through: 64, by: 4) { _ = try Self.feed(&intake, &buffer, [0x61], now: t) }
        #expect(intake.deadline == 60 && intake.expired(at: 64) && intake.expiry == .respond408)
    }

    @Test("a malformed head throws the parser's error, and the intake stays failed")
    func malformed() throws {
        var intake = RequestIntake(limits: HTTPLimits(), timeouts: Self.timeouts, now: 0)
        var buffer: [UInt8] = []
        #expect(throws: HTTPParseError.self) { try Self.feed(&intake, &buffer, Array("GET / HTTP/1.1\r\nBad Header\r\n\r\n".utf8), now: 0) }
    }
}
