import Testing
import HTTP2

/// The HTTP/2 session, fed frames made by hand (HPACK literals without Huffman).
@Suite struct H2SessionTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    /// A header block of literal fields (never indexed, no Huffman).
    static func block(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        func string(_ s: String) {
            let b = Array(s.utf8)
            if b.count < 127 { out.append(UInt8(b.count)) } else {
                out.append(127)
                var rest = b.count - 127
                while rest >= 128 { out.append(UInt8(rest & 0x7f | 0x80)); rest >>= 7 }
                out.append(UInt8(rest))
            }
            out += b
        }
        for (n, v) in fields { out.append(0x10); string(n); string(v) }
        return out
    }

    static func get(_ stream: UInt32, path: String = "/", extra: [(String, String)] = [], end: Bool = true) -> [UInt8] {
        frame(1, flags: 0x4 | (end ? 0x1 : 0), stream: stream,
              block([(":method", end ? "GET" : "POST"), (":scheme", "https"), (":path", path), (":authority", "site.test")] + extra))
    }

    static func start(_ limits: H2Session.Limits = H2Session.Limits()) throws -> H2Session {
        let s = try #require(H2Session(limits: limits, clock: { 0 }))
        #expect(s.receive((preface + frame(4))[...]))
        return s
    }

    /// The frames in `bytes`: (type, flags, stream, payload).
    static func frames(_ bytes: [UInt8]) -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] {
        var out: [(UInt8, UInt8, UInt32, [UInt8])] = []
        var i = 0
        while i + 9 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            let stream = UInt32(bytes[i + 5] & 0x7f) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8 | UInt32(bytes[i + 8])
            out.append((bytes[i + 3], bytes[i + 4], stream, Array(bytes[(i + 9)..<min(bytes.count, i + 9 + n)])))
            i += 9 + n
        }
        return out
    }

    @Test("a GET becomes a request event; the response goes out as HEADERS and DATA with END_STREAM")
    func request() throws {
        let s = try Self.start()
        #expect(s.receive(Self.get(1, path: "/a?b=c", extra: [("cookie", "x=1"), ("cookie", "y=2")])[...]))
        let events = s.takeEvents()
        guard case .request(1, let fields, true)? = events.first else { Issue.record("\(events)"); return }
        #expect(fields.map(\.name) == [":method", ":scheme", ":path", ":authority", "cookie", "cookie"])
        #expect(fields[2].value == "/a?b=c")
        s.respond(stream: 1, status: 200, fields: [.init("Content-Type", "text/plain")], body: true)
        s.send(stream: 1, Array("hello".utf8)[...], end: true)
        var out: [UInt8] = []
        s.output(into: &out)
        let f = Self.frames(out)
        #expect(f.contains { $0.type == 1 && $0.stream == 1 })  // HEADERS
        #expect(f.contains { $0.type == 0 && $0.stream == 1 && $0.payload == Array("hello".utf8) && $0.flags & 1 == 1 })
        #expect(s.takeEvents().contains(.closed(stream: 1, errorCode: 0)))
    }

    @Test("a POST's body arrives as data events, then its end; a body sent late resumes the stream")
    func body() throws {
        let s = try Self.start()
        s.receive(Self.get(3, end: false)[...])
        s.receive(Self.frame(0, stream: 3, Array("part one ".utf8))[...])
        s.receive(Self.frame(0, flags: 1, stream: 3, Array("part two".utf8))[...])
        let events = s.takeEvents()
        #expect(events.count == 4)
        #expect(events.dropFirst().first == .data(stream: 3, bytes: Array("part one ".utf8)))
        #expect(events.last == .endOfRequest(stream: 3))
        s.respond(stream: 3, status: 201, fields: [], body: true)
        var out: [UInt8] = []
        s.output(into: &out)
        #expect(!Self.frames(out).contains { $0.type == 0 })  // nothing to send yet: deferred
        s.send(stream: 3, Array("late".utf8)[...], end: true)
        out = []
        s.output(into: &out)
        #expect(Self.frames(out).contains { $0.type == 0 && $0.payload == Array("late".utf8) && $0.flags & 1 == 1 })
    }

    @Test("rapid reset: past the bucket of resets the connection gets GOAWAY and ends")
    func rapidReset() throws {
        var limits = H2Session.Limits()
        limits.resetBurst = 20
        limits.resetRate = 1
        let s = try Self.start(limits)
        var alive = true
        var stream: UInt32 = 1
        for _ in 0..<100 where alive {
            alive = s.receive((Self.get(stream, end: false) + Self.frame(3, stream: stream, [0, 0, 0, 8]))[...])
            stream += 2
        }
        var out: [UInt8] = []
        s.output(into: &out)
        #expect(Self.frames(out).contains { $0.type == 7 })  // GOAWAY
        #expect(!alive || !s.alive)
    }

    @Test("a PING flood ends the connection (ENHANCE_YOUR_CALM); a header list over the limit resets its stream")
    func floods() throws {
        let s = try Self.start()
        var ok = true
        for i in 0..<400 where ok { ok = s.receive(Self.frame(6, stream: 0, Array(repeating: UInt8(i & 0xff), count: 8))[...]) }
        #expect(!ok && s.failure == "PING or SETTINGS flood")
        var out: [UInt8] = []
        s.output(into: &out)
        #expect(Self.frames(out).contains { $0.type == 7 && $0.payload.count >= 8 && $0.payload[7] == 0x0b })

        var limits = H2Session.Limits()
        limits.maxHeaderListSize = 1000
        let t = try Self.start(limits)
        t.receive(Self.get(1, extra: [("x-big", String(repeating: "a", count: 2000))])[...])
        #expect(!t.takeEvents().contains { if case .request = $0 { true } else { false } })
        out = []
        t.output(into: &out)
        #expect(Self.frames(out).contains { $0.type == 3 && $0.stream == 1 })  // RST_STREAM
        t.receive(Self.get(3)[...])  // the connection goes on
        #expect(t.takeEvents().contains { if case .request(3, _, _) = $0 { true } else { false } })
    }
}
