import Testing
import HTTPWire
@testable import Exchanges

/// A CGI run's output as both drivers feed it: stdout, its end, and the events that end
/// a run early, with the decision and the log lines each gives.
@Suite("CGI output")
struct CGIOutputTests {
    static func output() -> CGIOutput { CGIOutput(relay: CGIPolicyTests.relay(after: "")) }

    static func feed(_ o: inout CGIOutput, _ text: String, _ out: inout [UInt8]) {
        o.stdout(Array(text.utf8)[...], into: &out, date: "D", draining: false)
    }

    @Test func aWholeResponseEndsWithTheLastChunk() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "Content-Type: text/plain\r\n\r\nhi", &out)
        o.stdoutEnded(into: &out)
        #expect(String(decoding: out, as: UTF8.self).hasSuffix("2\r\nhi\r\n0\r\n\r\n"))
        #expect(!o.relaying && o.end(abnormalExit: nil, script: "/x") == .done(keepAlive: true))
        #expect(o.takeNotes().isEmpty)
    }

    @Test func aShortBodyClosesTheConnection() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhi", &out)
        o.stdoutEnded(into: &out)
        #expect(o.end(abnormalExit: "exit 1", script: "/x") == .done(keepAlive: false))
        #expect(o.takeNotes() == [CGINotes.bodyLength(sent: 2, declared: 5), ExchangeNote(.info, "CGI program ended with exit 1")])
    }

    @Test func anExitWhileABackgroundChildHoldsStdoutEndsTheResponse() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "Content-Type: text/plain\r\n\r\nhi", &out)
        o.exitedHoldingStdout(into: &out)
        #expect(o.stdoutDone && o.end(abnormalExit: nil, script: "/x") == .done(keepAlive: true))
        #expect(o.takeNotes() == [CGINotes.leftoverHoldsStdout])
    }

    @Test func aTimeoutBeforeTheHeadIs504AndAfterItACLose() {
        var o = Self.output()
        o.timeout(after: 2)
        o.timeout(after: 2)  // once
        #expect(o.end(abnormalExit: "signal 15", script: "/x") == .respond(status: 504))
        #expect(o.takeNotes().first == CGINotes.timedOut(2))
        var p = Self.output()
        var out: [UInt8] = []
        Self.feed(&p, "Content-Type: text/plain\r\n\r\nhi", &out)
        p.timeout(after: 2)
        #expect(p.end(abnormalExit: nil, script: "/x") == .close)
    }

    @Test func aBadHeadIs502AndStopsTheRelay() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "no colon here\r\n\r\n", &out)
        #expect(!o.relaying && out.isEmpty)
        #expect(o.end(abnormalExit: nil, script: "/x") == .respond(status: 502))
    }

    @Test func aClientThatLeavesIs499() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "Content-Type: text/plain\r\n\r\nhi", &out)
        o.leave()
        #expect(!o.relaying && o.end(abnormalExit: nil, script: "/x") == .clientGone)
        #expect(o.takeNotes() == [CGINotes.clientGone])
    }

    @Test func aLocalRedirectIsFollowed() {
        var o = Self.output()
        var out: [UInt8] = []
        Self.feed(&o, "Location: /next\r\n\r\n", &out)
        o.stdoutEnded(into: &out)
        #expect(out.isEmpty && o.end(abnormalExit: nil, script: "/x") == .localRedirect("/next"))
    }
}
