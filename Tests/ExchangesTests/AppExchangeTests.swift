import Testing
import FastCGIWire
import HTTPWire
@testable import Exchanges

/// The FastCGI engine driven by hand, with a fake clock: each step it asks for, and what
/// follows each report. These are the decisions both drivers (blocking and epoll) carry out.
@Suite("FastCGI exchange engine")
struct AppExchangeTests {
    static let app = AppExchange.App(name: "a", slotCount: 2, queueTimeout: 2.5, keepConnection: true, maxResponseHead: 8192,
                                     connectTimeout: 1, readTimeout: 30)

    static func request(_ method: String = "GET") -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/x", version: HTTPVersion(major: 1, minor: 1), headers: HTTPHeaders(),
                        keepAlive: true, expectContinue: false, framing: method == "POST" ? .contentLength(3) : .none, host: "h")
    }

    static func exchange(_ method: String = "GET", body: AppExchange.Body = .none) -> AppExchange {
        AppExchange(app: app, request: request(method), params: [("SCRIPT_NAME", "/x")], body: body, keepAlive: true)
    }

    static func answer(id: UInt16, _ stdout: String, protocolStatus: UInt8 = 0) -> [UInt8] {
        var out: [UInt8] = []
        if !stdout.isEmpty { Array(stdout.utf8).withUnsafeBytes { FastCGIEncoder.appendStream(.stdout, requestID: id, bytes: $0, into: &out) } }
        FastCGIEncoder.appendEndOfStream(.stdout, requestID: id, into: &out)
        [0, 0, 0, 0, protocolStatus, 0, 0, 0].withUnsafeBytes { FastCGIEncoder.appendRecord(.endRequest, requestID: id, content: $0, into: &out) }
        return out
    }

    /// A head that promises 10 bytes, and 3 of them.
    static func receiveHeadAndPart(_ x: inout AppExchange) {
        var out: [UInt8] = []
        var part: [UInt8] = []
        Array("Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc".utf8).withUnsafeBytes {
            FastCGIEncoder.appendStream(.stdout, requestID: 1, bytes: $0, into: &part)
        }
        x.received(part[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
        #expect(!out.isEmpty)
    }

    static let hello = "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"

    /// Takes a granted slot on a new connection through to the first read.
    static func connectAndSend(_ x: inout AppExchange, slot: Int = 0, id: UInt16 = 1, now: Double = 0) {
        #expect(x.next() == .acquireSlot)
        x.granted(slot: slot, requestID: id, kept: false, now: now)
        #expect(x.next() == .connect)
        x.connected(now: now)
        #expect(x.next() == .write)
        x.wrote(x.outgoing.count, now: now)
        #expect(x.next() == .read)
    }

    @Test func answeredOnANewConnection() {
        var x = Self.exchange()
        Self.connectAndSend(&x, id: 7, now: 10)
        #expect(x.deadline == 40)
        var out: [UInt8] = []
        x.received(Self.answer(id: 7, Self.hello)[...], into: &out, mayKeepAlive: true, date: "D", now: 11)
        #expect(String(decoding: out, as: UTF8.self).hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: true))
        #expect(x.status == 200 && x.takeNotes().isEmpty)
    }

    @Test func theRequestGoesInOneWriteWithItsEmptyStdin() {
        var x = Self.exchange("POST", body: .memory(Array("abc".utf8)))
        #expect(x.next() == .acquireSlot)
        x.granted(slot: 0, requestID: 3, kept: false, now: 0)
        _ = x.next()
        x.connected(now: 0)
        // BEGIN_REQUEST, PARAMS, empty PARAMS, STDIN "abc", empty STDIN.
        var rest = x.outgoing[...]
        var types: [UInt8] = []
        while rest.count >= 8 {
            types.append(rest[rest.startIndex + 1])
            let length = Int(rest[rest.startIndex + 4]) << 8 | Int(rest[rest.startIndex + 5])
            rest = rest.dropFirst(8 + length + Int(rest[rest.startIndex + 6]))
        }
        #expect(types == [1, 4, 4, 5, 5])
    }

    @Test func aKeptConnectionTheAppClosedIsRetriedOnANewOne() {
        var x = Self.exchange()
        #expect(x.next() == .acquireSlot)
        x.granted(slot: 1, requestID: 2, kept: true, now: 0)
        #expect(x.next() == .write)  // no connect: the kept one is used
        let first = x.outgoing
        x.wrote(first.count, now: 0)
        #expect(x.next() == .read)
        x.closed(now: 0.5)
        #expect(x.next() == .discardConnection)
        #expect(x.next() == .connect)
        #expect(x.deadline == 1.5)
        x.connected(now: 0.6)
        #expect(x.next() == .write)
        #expect(x.outgoing == first)
        #expect(x.takeNotes() == [ExchangeNote(.debug, "kept connection was closed by the app; retrying on a new one")])
    }

    @Test func aProcessThatDiesBeforeAnsweringAGetIsRetriedOnceOnAnotherSlot() {
        var x = Self.exchange()
        Self.connectAndSend(&x, slot: 0)
        x.closed(now: 1)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        Self.connectAndSend(&x, slot: 1)
        x.closed(now: 2)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 502, retryAfter: nil))
        #expect(x.tries == 2)
    }

    @Test func aPostIsNotSentTwice() {
        var x = Self.exchange("POST", body: .memory(Array("abc".utf8)))
        Self.connectAndSend(&x)
        x.closed(now: 1)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 502, retryAfter: nil))
    }

    @Test func aFullQueueIs503WithRetryAfter() {
        var x = Self.exchange()
        #expect(x.next() == .acquireSlot)
        x.noSlot(.queueFull)
        #expect(x.next() == .respond(status: 503, retryAfter: "3"))  // no slot, so no release
        var y = Self.exchange()
        _ = y.next()
        y.noSlot(.queueTimedOut)
        #expect(y.next() == .respond(status: 503, retryAfter: "3"))
    }

    @Test func aSilentAppIs504AtItsDeadline() {
        var x = Self.exchange()
        Self.connectAndSend(&x, now: 100)
        #expect(x.deadline == 130)
        x.timedOut(now: 130)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 504, retryAfter: nil))
    }

    @Test func aConnectThatDoesNotCompleteIs502() {
        var x = Self.exchange()
        _ = x.next()
        x.granted(slot: 0, requestID: 1, kept: false, now: 5)
        #expect(x.next() == .connect && x.deadline == 6)
        x.timedOut(now: 6)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 502, retryAfter: nil))
        #expect(x.takeNotes().first?.message.contains("timed out after 1.0 s") == true)
    }

    @Test func overloadedSlotsAreTriedEachOnceThen503() {
        var x = Self.exchange()
        var out: [UInt8] = []
        for slot in 0..<3 {
            Self.connectAndSend(&x, slot: slot % 2)
            x.received(Self.answer(id: 1, "", protocolStatus: 2)[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
            #expect(x.next() == .release(reusable: false, served: false, overloaded: true))
        }
        #expect(x.next() == .respond(status: 503, retryAfter: "1"))
        #expect(out.isEmpty)
    }

    @Test func aResponseBrokenAfterItsHeadClosesTheClient() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        Self.receiveHeadAndPart(&x)
        #expect(x.headSent)
        x.closed(now: 2)
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .closeClient)
        #expect(x.status == 200)
    }

    @Test func aLocalRedirectIsHandedToTheDriver() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, "Location: /other\r\n\r\n")[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
        #expect(out.isEmpty)
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .redirect("/other"))
    }

    @Test func anOffloadIsHandedToTheDriverAndTheSlotFreedFirst() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, "X-Accel-Redirect: /internal/f\r\n\r\nbody")[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
        #expect(out.isEmpty)
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .offload(Offload(target: .uri("/internal/f"))))
    }

    static let timed = AppExchange.App(name: "a", slotCount: 2, queueTimeout: 2.5, keepConnection: true, maxResponseHead: 8192,
                                       connectTimeout: 1, readTimeout: 30, requestTimeout: 5, slowRequest: 2)

    @Test("slow_request: an entry while the app holds the request, and the wait goes on")
    func slowRequestIsInspectedOnce() {
        var x = AppExchange(app: Self.timed, request: Self.request(), params: [], body: .none, keepAlive: true)
        Self.connectAndSend(&x, now: 10)
        #expect(x.deadline == 12)
        x.timedOut(now: 12)
        #expect(x.next() == .inspect(elapsed: 2, end: false))
        #expect(x.next() == .read && x.deadline == 15)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, Self.hello)[...], into: &out, mayKeepAlive: true, date: "D", now: 13)
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: true) && x.deadline == 13 + 30)  // (the read deadline only)
    }

    @Test("request_timeout: the entry and the end of the process come first, then the release and 504; never a retry")
    func requestTimeoutEndsTheRequest() {
        var x = AppExchange(app: Self.timed, request: Self.request(), params: [], body: .none, keepAlive: true)
        Self.connectAndSend(&x, now: 10)
        x.timedOut(now: 12)
        _ = x.next()
        x.timedOut(now: 15)
        #expect(x.next() == .inspect(elapsed: 5, end: true))
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 504, retryAfter: nil))
        #expect(x.takeNotes().contains(ExchangeNote(.error, "the app held the request past request_timeout (5.0 s)")))
    }

    @Test("past request_timeout after the head went out, the client connection closes")
    func requestTimeoutAfterTheHead() {
        var x = AppExchange(app: Self.timed, request: Self.request(), params: [], body: .none, keepAlive: true)
        Self.connectAndSend(&x, now: 0)
        Self.receiveHeadAndPart(&x)
        x.timedOut(now: 5)
        #expect(x.next() == .inspect(elapsed: 5, end: true))
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .closeClient)
    }

    @Test("the app gets X-Request-Start and the time the request waited for its slot")
    func timingReachesTheApp() throws {
        var x = AppExchange(app: Self.app, request: Self.request(), params: [("A", "b")], body: .none, keepAlive: true,
                            queuedSince: 100, requestStartMicros: 1_700_000_000_123_456)
        #expect(x.next() == .acquireSlot)
        x.granted(slot: 0, requestID: 1, kept: false, now: 100.25)
        x.connected(now: 100.25)
        let sent = String(decoding: x.outgoing, as: UTF8.self)
        #expect(sent.contains("GATEWAY_QUEUE_WAIT_US250000") && sent.contains("HTTP_X_REQUEST_STARTt=1700000000123456"))
        #expect(sent.contains("Ab"))
    }

    @Test func aStreamedBodyNeverRidesAKeptConnectionAndIsNotReplayed() {
        var x = Self.exchange("POST", body: .pieces(replayable: false))
        #expect(!x.replayable)
        _ = x.next()
        x.granted(slot: 0, requestID: 1, kept: true, now: 0)
        #expect(x.next() == .discardConnection)
        #expect(x.next() == .connect)
        x.connected(now: 0)
        #expect(x.next() == .write)
        x.wrote(x.outgoing.count, now: 0)
        #expect(x.next() == .supplyBody && x.wantsBody)
        x.bodyPiece(Array("abc".utf8)[...])
        #expect(x.next() == .write && x.bodyOffset == 3)
        x.wrote(x.outgoing.count, now: 0)
        #expect(x.next() == .supplyBody)
        x.bodyEnd()
        #expect(x.next() == .write)
        x.wrote(x.outgoing.count, now: 0)
        #expect(x.next() == .read)
        x.closed(now: 1)  // even on a kept... it was new: and a body was streamed
        #expect(x.next() == .release(reusable: false, served: false, overloaded: false))
        #expect(x.next() == .respond(status: 502, retryAfter: nil))
    }

    @Test func aSpooledBodyStartsAgainOnARetry() {
        var x = Self.exchange("GET", body: .pieces(replayable: true))
        _ = x.next()
        x.granted(slot: 0, requestID: 1, kept: true, now: 0)
        #expect(x.next() == .write)
        x.wrote(x.outgoing.count, now: 0)
        #expect(x.next() == .supplyBody)
        x.bodyPiece(Array("abcd".utf8)[...])
        x.wrote(x.outgoing.count, now: 0)
        x.closed(now: 0)  // the kept connection was stale
        #expect(x.next() == .discardConnection)
        #expect(x.next() == .connect)
        x.connected(now: 0)
        #expect(x.bodyOffset == 0)
    }

    @Test func anEarlyAnswerWhileTheBodyIsSentIsRelayedAndTheConnectionNotKept() {
        var x = Self.exchange("POST", body: .pieces(replayable: true))
        Self.connectAndSendHead(&x)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, "Status: 413 Too Big\r\nContent-Length: 0\r\n\r\n")[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
        #expect(x.next() == .release(reusable: false, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: true))
        #expect(x.status == 413)
    }

    @Test func aClientThatLeavesGivesTheSlotBack() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        Self.receiveHeadAndPart(&x)
        x.clientGone()
        #expect(x.next() == .release(reusable: false, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: false))
    }

    @Test func aClientThatLeavesAfterTheEndKeepsTheAppConnection() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, Self.hello)[...], into: &out, mayKeepAlive: true, date: "D", now: 1)
        x.clientGone()  // the last write to the client failed
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: false))
    }

    @Test func aBrokenStreamedBodyIsTheClientsError() {
        var x = Self.exchange("POST", body: .pieces(replayable: false))
        Self.connectAndSendHead(&x)
        x.bodyFailed(status: 408)
        #expect(x.next() == .release(reusable: false, served: true, overloaded: false))
        #expect(x.next() == .respond(status: 408, retryAfter: nil))
    }

    static func connectAndSendHead(_ x: inout AppExchange) {
        _ = x.next()
        x.granted(slot: 0, requestID: 1, kept: false, now: 0)
        _ = x.next()
        x.connected(now: 0)
        x.wrote(x.outgoing.count, now: 0)
        #expect(x.next() == .supplyBody)
    }

    @Test func drainingClosesTheClientAfterTheResponse() {
        var x = Self.exchange()
        Self.connectAndSend(&x)
        var out: [UInt8] = []
        x.received(Self.answer(id: 1, Self.hello)[...], into: &out, mayKeepAlive: false, date: "D", now: 1)
        #expect(String(decoding: out, as: UTF8.self).contains("Connection: close\r\n"))
        #expect(x.next() == .release(reusable: true, served: true, overloaded: false))
        #expect(x.next() == .finished(keepAlive: false))
    }
}
