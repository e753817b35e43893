import Testing
@testable import Exchanges

/// The one retry table: every row, as both worker families now follow it.
@Suite("upstream retry policy")
struct UpstreamPolicyTests {
    static func state(tries: Int = 1, reused: Bool = false, replayable: Bool = true, idempotent: Bool = true,
                      headSent: Bool = false) -> AttemptState {
        AttemptState(tries: tries, slot: 3, reusedConnection: reused, replayable: replayable, idempotent: idempotent, headSent: headSent)
    }

    static func decide(_ f: UpstreamFailure, _ s: AttemptState, slots: Int = 4) -> (UpstreamDecision, ExchangeNote) {
        UpstreamPolicy.decide(f, s, app: "php", slotCount: slots, queueTimeout: 2.5)
    }

    @Test("a kept connection closed before a byte: the same slot, a new connection")
    func staleKeptConnection() {
        let (d, note) = Self.decide(.closedBeforeAnswer, Self.state(reused: true, idempotent: false))
        #expect(d == .reconnect)
        #expect(note.level == .debug)
    }

    @Test("a process that died before answering: one retry for an idempotent request, else 502")
    func closedBeforeAnswer() {
        #expect(Self.decide(.closedBeforeAnswer, Self.state()).0 == .anotherSlot(overloaded: false))
        #expect(Self.decide(.closedBeforeAnswer, Self.state()).1.message == "app php: slot 3 closed the connection before answering; retrying once")
        #expect(Self.decide(.closedBeforeAnswer, Self.state(tries: 2)).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.closedBeforeAnswer, Self.state(idempotent: false)).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.closedBeforeAnswer, Self.state(replayable: false)).0 == .respond(status: 502, retryAfter: nil))
        // A streamed body is never sent twice, not even on a new connection to the same slot.
        #expect(Self.decide(.closedBeforeAnswer, Self.state(reused: true, replayable: false)).0 == .respond(status: 502, retryAfter: nil))
    }

    @Test("several servers: a refused connect tries each server once, any method; a reset or a timeout before a byte, idempotent only")
    func severalServers() {
        func s(tries: Int = 1, idempotent: Bool = true, headSent: Bool = false) -> AttemptState {
            AttemptState(tries: tries, slot: 3, reusedConnection: false, replayable: true, idempotent: idempotent, headSent: headSent, servers: 3)
        }
        let refused = UpstreamFailure.unreachable(.connect("refused"))
        #expect(Self.decide(refused, s()).0 == .anotherSlot(overloaded: false))
        #expect(Self.decide(refused, s(tries: 2, idempotent: false)).0 == .anotherSlot(overloaded: false))
        #expect(Self.decide(refused, s(tries: 3)).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(refused, Self.state()).0 == .respond(status: 502, retryAfter: nil))  // one server: nowhere else
        #expect(Self.decide(.closedBeforeAnswer, s(tries: 2)).0 == .anotherSlot(overloaded: false))
        #expect(Self.decide(.closedBeforeAnswer, s(tries: 3)).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.broken(.timeout), s()).0 == .anotherSlot(overloaded: false))
        #expect(Self.decide(.broken(.timeout), s(idempotent: false)).0 == .respond(status: 504, retryAfter: nil))
        #expect(Self.decide(.broken(.timeout), s(headSent: true)).0 == .close)
        #expect(Self.decide(.broken(.deadline(5)), s()).0 == .respond(status: 504, retryAfter: nil))  // request_timeout: never again
    }

    @Test("FCGI_OVERLOADED: another slot while slots remain, then 503 with Retry-After 1")
    func overloaded() {
        #expect(Self.decide(.overloaded, Self.state(tries: 4)).0 == .anotherSlot(overloaded: true))
        #expect(Self.decide(.overloaded, Self.state(tries: 5)).0 == .respond(status: 503, retryAfter: "1"))
        #expect(Self.decide(.overloaded, Self.state(replayable: false)).0 == .respond(status: 503, retryAfter: "1"))
        #expect(Self.decide(.overloaded, Self.state(idempotent: false)).0 == .anotherSlot(overloaded: true))
    }

    @Test("503 from the queue carries Retry-After: queue_timeout rounded up")
    func queue() {
        #expect(Self.decide(.queueFull, Self.state()).0 == .respond(status: 503, retryAfter: "3"))
        #expect(Self.decide(.queueTimedOut, Self.state()).0 == .respond(status: 503, retryAfter: "3"))
        #expect(Self.decide(.queueTimedOut, Self.state()).1.message.contains("queue_timeout (2.5 s)"))
        #expect(UpstreamPolicy.retryAfter(0.2) == "1")
    }

    @Test("502 for a broken exchange, 504 for the read timeout; after the head, only a close")
    func broken() {
        #expect(Self.decide(.unreachable(.connect("refused")), Self.state()).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.broken(.protocolError("x")), Self.state()).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.broken(.timeout), Self.state()).0 == .respond(status: 504, retryAfter: nil))
        #expect(Self.decide(.broken(.closedEarly), Self.state()).0 == .respond(status: 502, retryAfter: nil))
        #expect(Self.decide(.broken(.timeout), Self.state(headSent: true)).0 == .close)
        #expect(Self.decide(.broken(.timeout), Self.state(headSent: true)).1.level == .error)
    }
}
