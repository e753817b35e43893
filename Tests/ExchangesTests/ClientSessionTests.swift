import Testing
import HTTPWire
@testable import Exchanges

/// The per-connection machine driven by hand, with a fake clock: the steps every driver
/// (sync, thread, epoll) carries out, and the decisions behind them.
@Suite("client session")
struct ClientSessionTests {
    final class Host: SessionHost {
        var ids: UInt64 = 0
        var draining = false
        func nextRequestID() -> RequestID {
            ids += 1
            return RequestID(prefix: "t-", number: ids)
        }
        func offersKeepAlive(to head: HTTPRequestHead) -> Bool { head.keepAlive && !draining }
        func httpDate() -> String { "D" }
        func idleDeadline(_ deadline: Double) -> Double { draining ? min(deadline, 1) : deadline }
        func closedByDrain(_ head: HTTPRequestHead) -> Bool { draining && head.keepAlive }
    }

    static let timeouts = RequestIntake.Timeouts(header: 10, keepalive: 2, body: 5, bodyTotal: 60)

    static func session(proxy: Bool = false) -> ClientSession {
        ClientSession(limits: HTTPLimits(), timeouts: timeouts, now: 0, proxyHeader: proxy)
    }

    /// Steps until the session needs the driver: makes records as a driver does.
    static func run(_ s: inout ClientSession, _ host: Host, now: Double = 0) -> ClientSession.Step {
        while true {
            let step = s.next(host, now: now)
            guard case .begin(let head) = step else { return step }
            s.begin(RequestRecord(head: head, id: host.nextRequestID(), started: now, keepAlive: host.offersKeepAlive(to: head)))
        }
    }

    static func text(_ step: ClientSession.Step) -> String? {
        guard case .send(let bytes) = step else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Flush, then the finished record.
    static func finish(_ s: inout ClientSession, _ host: Host) -> RequestRecord? {
        guard case .flush = s.next(host, now: 1) else { return nil }
        s.flushed()
        guard case .finished(let r) = s.next(host, now: 1) else { return nil }
        return r
    }

    @Test("a GET is routed, answered, logged, and the connection waits for the next")
    func keepAlive() {
        let host = Host()
        var s = Self.session()
        #expect({ if case .read = s.next(host, now: 0) { true } else { false } }())
        s.received(Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        guard case .route(let r) = Self.run(&s, host) else { Issue.record("no route"); return }
        #expect(r.target == "/a" && r.responseKeepAlive)
        s.answered(status: 200, bytes: 42)
        let done = Self.finish(&s, host)
        #expect(done?.status == 200 && done?.bytesSent == 42 && done?.loggedStatus == 200)
        #expect({ if case .read = s.next(host, now: 1) { true } else { false } }())
        #expect(s.isIdle && s.deadline == 1 + Self.timeouts.keepalive)
    }

    @Test("pipelined requests come one after the other")
    func pipelined() {
        let host = Host()
        var s = Self.session()
        s.received(Array("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        for target in ["/1", "/2"] {
            guard case .route(let r) = Self.run(&s, host) else { Issue.record("no route for \(target)"); return }
            #expect(r.target == target)
            s.answered(status: 204, bytes: 10)
            #expect(Self.finish(&s, host) != nil)
        }
    }

    @Test("a bad request gets its 4xx, a \"-\" log line, and a lingering close")
    func badRequest() {
        let host = Host()
        var s = Self.session()
        s.received(Array("GET / HTTP/1.1\r\nBad Header\r\n\r\n".utf8)[...])
        let page = Self.text(Self.run(&s, host))
        #expect(page?.hasPrefix("HTTP/1.1 400") == true && page?.contains("Connection: close") == true)
        let r = Self.finish(&s, host)
        #expect(r?.status == 400 && r?.logVersion == "-" && r?.head.method == "-")
        guard case .close(let linger) = s.next(host, now: 1) else { Issue.record("no close"); return }
        #expect(linger)
        #expect(!s.takeNotes().isEmpty)
    }

    @Test("a body is read before the exchange, after 100 Continue")
    func bodyThenExchange() {
        let host = Host()
        var s = Self.session()
        s.received(Array("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n".utf8)[...])
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
        s.forward(now: 0)
        #expect(Self.text(s.next(host, now: 0))?.hasPrefix("HTTP/1.1 100") == true)
        #expect({ if case .read = s.next(host, now: 0) { true } else { false } }())
        #expect(s.deadline == Self.timeouts.body)
        s.received(Array("hel".utf8)[...])
        var body: [UInt8] = []
        var step = s.next(host, now: 1)
        while case .holdBody(let piece) = step {
            body += piece
            step = s.next(host, now: 1)
            if case .read = step {
                s.received(Array("lo".utf8)[...])
                step = s.next(host, now: 1)
            }
        }
        #expect(String(decoding: body, as: UTF8.self) == "hello")
        guard case .exchange(let r) = step else { Issue.record("no exchange: \(step)"); return }
        #expect(r.bodyDone)
        s.exchangeEnded(.done(keepAlive: true), host)
        #expect(Self.finish(&s, host) === r)
        #expect({ if case .read = s.next(host, now: 2) { true } else { false } }())
    }

    @Test("a refusal of a request whose body is unread closes, lingering")
    func refusalWithUnreadBody() {
        let host = Host()
        var s = Self.session()
        s.received(Array("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".utf8)[...])
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
        s.refuse(404, [], host)
        let page = Self.text(s.next(host, now: 0))
        #expect(page?.hasPrefix("HTTP/1.1 404") == true && page?.contains("Connection: close") == true)
        #expect(Self.finish(&s, host)?.status == 404)
        guard case .close(let linger) = s.next(host, now: 1) else { Issue.record("no close"); return }
        #expect(linger)
    }

    @Test("a head cut short gets 408 at the header timeout; an idle connection just closes")
    func timeouts() {
        let host = Host()
        var s = Self.session()
        s.received(Array("GET / HTTP/1.1\r\n".utf8)[...])
        _ = Self.run(&s, host, now: 3)
        #expect(s.deadline == 3 + Self.timeouts.header)
        s.timedOut(host, now: 13)
        #expect(Self.text(s.next(host, now: 13))?.hasPrefix("HTTP/1.1 408") == true)
        #expect(Self.finish(&s, host)?.status == 408)

        var idle = Self.session()
        _ = idle.next(host, now: 0)
        idle.timedOut(host, now: 10)
        guard case .close(let linger) = idle.next(host, now: 10) else { Issue.record("no close"); return }
        #expect(!linger)
    }

    @Test("a slow body gets 408; a client that closes during its body is logged 400")
    func bodyTrouble() {
        let host = Host()
        for closes in [false, true] {
            var s = Self.session()
            s.received(Array("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab".utf8)[...])
            guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
            s.forward(now: 0)
            while case .holdBody = s.next(host, now: 0) {}
            if closes {
                s.clientClosed()
                guard case .finished(let r) = s.next(host, now: 1) else { Issue.record("not finished"); return }
                #expect(r.status == 400)
            } else {
                s.timedOut(host, now: 6)
                #expect(Self.text(s.next(host, now: 6))?.hasPrefix("HTTP/1.1 408") == true)
                #expect(Self.finish(&s, host)?.status == 408)
            }
            guard case .close = s.next(host, now: 1) else { Issue.record("no close"); return }
        }
    }

    @Test("local redirects are routed again, up to 5; the sixth is a 500")
    func redirectCap() {
        let host = Host()
        var s = Self.session()
        s.received(Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
        for i in 1...5 {
            s.forward(now: 0)
            guard case .exchange = s.next(host, now: 0) else { Issue.record("no exchange"); return }
            s.exchangeEnded(.redirect("/r\(i)"), host)
            guard case .route(let r) = s.next(host, now: 0) else { Issue.record("not routed again"); return }
            #expect(r.target == "/r\(i)")
        }
        s.forward(now: 0)
        _ = s.next(host, now: 0)
        s.exchangeEnded(.redirect("/r6"), host)
        #expect(Self.text(s.next(host, now: 0))?.hasPrefix("HTTP/1.1 500") == true)
        #expect(s.takeNotes().contains { $0.level == .error })
    }

    @Test("an offload is routed once more with the record carrying it; the target stays the request's")
    func offloadRoutesAgain() {
        let host = Host()
        var s = Self.session()
        s.received(Array("POST /dl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".utf8)[...])
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
        s.forward(now: 0)
        guard case .exchange = s.next(host, now: 0) else { Issue.record("no exchange"); return }
        s.exchangeEnded(.offload(Offload(target: .file("/srv/a"))), host)
        guard case .route(let r) = s.next(host, now: 0) else { Issue.record("not routed again"); return }
        #expect(r.offload?.target == .file("/srv/a") && r.target == "/dl" && r.keepAlive)
        s.answered(status: 200, bytes: 10)
        #expect(Self.finish(&s, host)?.status == 200)
    }

    @Test("a client gone mid-response is logged 499 with the bytes it had")
    func clientGone() {
        let host = Host()
        var s = Self.session()
        s.received(Array("GET /big HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
        s.answered(status: 200, bytes: 1000)
        guard case .flush = s.next(host, now: 0) else { Issue.record("no flush"); return }
        s.clientGone(unsent: 600)
        guard case .finished(let r) = s.next(host, now: 0) else { Issue.record("not finished"); return }
        #expect(r.loggedStatus == 499 && r.status == 200 && r.bytesSent == 400)
        guard case .close(let linger) = s.next(host, now: 0) else { Issue.record("no close"); return }
        #expect(!linger)
    }

    @Test("a PROXY header names the client before the first request")
    func proxyHeader() {
        let host = Host()
        var s = Self.session(proxy: true)
        s.received(Array("PROXY TCP4 10.0.0.1 10.0.0.2 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        guard case .proxied(let address, let port) = s.next(host, now: 0) else { Issue.record("no proxied"); return }
        #expect(address == "10.0.0.1" && port == 5555)
        guard case .route = Self.run(&s, host) else { Issue.record("no route"); return }
    }

    @Test("draining: the response says close, and a connection the client wanted kept lingers")
    func draining() {
        let host = Host()
        host.draining = true
        var s = Self.session()
        s.received(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)[...])
        guard case .route(let r) = Self.run(&s, host) else { Issue.record("no route"); return }
        #expect(!r.responseKeepAlive)
        s.refuse(503, [("Retry-After", "1")], host)
        let page = Self.text(s.next(host, now: 0))
        #expect(page?.contains("Retry-After: 1") == true && page?.contains("Connection: close") == true)
        #expect(Self.finish(&s, host)?.status == 503)
        guard case .close(let linger) = s.next(host, now: 1) else { Issue.record("no close"); return }
        #expect(linger)
    }
}
