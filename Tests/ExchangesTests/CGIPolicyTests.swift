import Testing
import HTTPWire
@testable import Exchanges

/// The end of a CGI run: one table for both worker families.
@Suite("CGI end policy")
struct CGIPolicyTests {
    static func relay(after output: String) -> CGIResponseRelay {
        let head = HTTPRequestHead(method: "GET", target: "/cgi-bin/x", version: HTTPVersion(major: 1, minor: 1), headers: HTTPHeaders(),
                                   keepAlive: true, expectContinue: false, framing: .none, host: "h")
        var r = CGIResponseRelay(request: head, nph: false, maxHeadSize: 8192, keepAlive: true)
        var out: [UInt8] = []
        try? r.receive(Array(output.utf8)[...], into: &out, date: "D", draining: false)
        return r
    }

    static func end(exit: String? = nil, gone: Bool = false, timedOut: Bool = false, stdoutDone: Bool = true, failure: String? = nil) -> CGIEnd {
        CGIEnd(abnormalExit: exit, clientGone: gone, timedOut: timedOut, stdoutDone: stdoutDone, failure: failure)
    }

    static var whole: CGIResponseRelay { relay(after: "Content-Type: text/plain\r\n\r\nhi") }
    static var nothing: CGIResponseRelay { relay(after: "") }

    @Test func cleanEndKeepsTheConnection() {
        let (d, notes) = CGIPolicy.finish(Self.end(), relay: Self.whole, script: "/cgi-bin/x")
        #expect(d == .done(keepAlive: true))
        #expect(notes.isEmpty)
    }

    @Test("exit before the end of output, and after it")
    func exitStatus() {
        // Exited non-zero after a whole response: the response stands, the exit is noted.
        let (d, notes) = CGIPolicy.finish(Self.end(exit: "exit 3"), relay: Self.whole, script: "/cgi-bin/x")
        #expect(d == .done(keepAlive: true))
        #expect(notes == [ExchangeNote(.info, "CGI program ended with exit 3")])
        // Exited with nothing written: the relay's failure ("no output") is a 502.
        let (d2, notes2) = CGIPolicy.finish(Self.end(exit: "signal 9", failure: "no output"), relay: Self.nothing, script: "/cgi-bin/x")
        #expect(d2 == .respond(status: 502))
        #expect(notes2.last == ExchangeNote(.error, "/cgi-bin/x: no output"))
        // The same after the head went out: only a close.
        #expect(CGIPolicy.finish(Self.end(failure: "pipe"), relay: Self.whole, script: "s").0 == .close)
    }

    @Test("a timeout is a 504 before the head, a close after it; a finished run stands")
    func timeout() {
        #expect(CGIPolicy.finish(Self.end(timedOut: true, stdoutDone: false), relay: Self.nothing, script: "s").0 == .respond(status: 504))
        #expect(CGIPolicy.finish(Self.end(timedOut: true, stdoutDone: false), relay: Self.whole, script: "s").0 == .close)
        #expect(CGIPolicy.finish(Self.end(timedOut: true, stdoutDone: true), relay: Self.whole, script: "s").0 == .done(keepAlive: true))
    }

    @Test func clientGoneWinsOverEverything() {
        #expect(CGIPolicy.finish(Self.end(gone: true, timedOut: true, failure: "x"), relay: Self.nothing, script: "s").0 == .clientGone)
    }

    @Test func localRedirect() {
        #expect(CGIPolicy.finish(Self.end(), relay: Self.relay(after: "Location: /next\r\n\r\n"), script: "s").0 == .localRedirect("/next"))
    }

    @Test("local redirects: five are followed, the sixth is refused")
    func redirectCap() {
        var r = LocalRedirects()
        for i in 1...5 { #expect(r.follow("/p\(i)").allowed) }
        let sixth = r.follow("/p6")
        #expect(!sixth.allowed && sixth.note == ExchangeNote(.error, "more than 5 local redirects"))
    }
}
