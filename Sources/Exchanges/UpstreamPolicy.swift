/// What went wrong with one attempt to have an app answer a request.
public enum UpstreamFailure: Sendable, Equatable {
    /// No slot: the app's queue is full.
    case queueFull
    /// No slot within queue_timeout.
    case queueTimedOut
    /// The connection to the app could not be opened.
    case unreachable(UpstreamError)
    /// The app closed (or reset) the connection before sending a byte.
    case closedBeforeAnswer
    /// The app answered FCGI_OVERLOADED (or CANT_MPX_CONN) before any output.
    case overloaded
    /// Anything else: a protocol error, the read timeout, an end in the middle.
    case broken(UpstreamError)
}

/// What a failed attempt says of the app's server, for passive health (the slot table
/// keeps it per server) and the status page: a plain byte, so an exchange that holds it
/// stays cheap to copy (an UpstreamFailure carries Strings).
public enum ServerFault: UInt8, Sendable, CustomStringConvertible {
    /// Nothing of the server's: no failure, or one of the client's, the queue's or the app's protocol.
    case none
    /// The connect failed.
    case refused
    /// The connection closed before the answer.
    case reset
    /// Silent past backend_read.
    case timeout
    /// An active health probe failed (the master's; see AppPool's ServerWatch).
    case probe

    public init(_ f: UpstreamFailure) {
        switch f {
        case .unreachable: self = .refused
        case .closedBeforeAnswer, .broken(.closedEarly): self = .reset
        case .broken(.timeout): self = .timeout
        default: self = .none
        }
    }

    public var description: String {
        switch self {
        case .none: "-"
        case .refused: "connect failed"
        case .reset: "closed before answering"
        case .timeout: "timed out"
        case .probe: "health probe failed"
        }
    }
}

/// The facts the decision depends on.
public struct AttemptState: Sendable, Equatable {
    /// Slots tried so far, this one included.
    public var tries: Int
    /// The slot of this attempt (for the log).
    public var slot: Int
    /// The attempt used a connection kept from an earlier request.
    public var reusedConnection: Bool
    /// The request can be sent again: its body, if any, is held (memory or file).
    public var replayable: Bool
    /// GET, HEAD or OPTIONS.
    public var idempotent: Bool
    /// The response head has gone to the client: only closing is left.
    public var headSent: Bool
    /// The app has more than one server (a retry can go to another).
    public var servers: Int = 1

    public init(tries: Int, slot: Int, reusedConnection: Bool, replayable: Bool, idempotent: Bool, headSent: Bool, servers: Int = 1) {
        self.servers = servers
        self.tries = tries
        self.slot = slot
        self.reusedConnection = reusedConnection
        self.replayable = replayable
        self.idempotent = idempotent
        self.headSent = headSent
    }
}

/// What the driver does next.
public enum UpstreamDecision: Sendable, Equatable {
    /// The same slot on a new connection: a kept connection the app closed meanwhile
    /// (recycling); nothing of the request reached the app.
    case reconnect
    /// Give the slot back (resting it when `overloaded`) and take another.
    case anotherSlot(overloaded: Bool)
    /// Give the slot back and answer with this error (and Retry-After when set).
    case respond(status: Int, retryAfter: String?)
    /// The head is out: end the response by closing the connection.
    case close
}

/// The one retry table of FastCGI exchanges, for every worker class. A request is sent
/// again only when the app cannot have acted on it: a kept connection closed before a
/// byte came back, a process that died before answering an idempotent request (once),
/// or FCGI_OVERLOADED (on each other slot at most once). A body streamed from the
/// client (not held) is never replayed.
public enum UpstreamPolicy {
    public static func decide(_ failure: UpstreamFailure, _ s: AttemptState, app: String, slotCount: Int,
                              queueTimeout: Double) -> (UpstreamDecision, ExchangeNote) {
        switch failure {
        case .queueFull:
            return (.respond(status: 503, retryAfter: retryAfter(queueTimeout)),
                    ExchangeNote(.warning, "app \(app): its queue is full; answering 503"))
        case .queueTimedOut:
            return (.respond(status: 503, retryAfter: retryAfter(queueTimeout)),
                    ExchangeNote(.warning, "app \(app): no free slot within queue_timeout (\(queueTimeout) s); answering 503"))
        case .unreachable(let e) where s.servers > 1 && s.replayable && s.tries < s.servers:
            // Nothing reached the app: safe for any method, on each server in turn.
            return (.anotherSlot(overloaded: false), ExchangeNote(.warning, "app \(app): \(e); trying another server"))
        case .unreachable(let e):
            return (.respond(status: e.status, retryAfter: nil), ExchangeNote(.error, "\(e)"))
        case .broken(.timeout) where s.servers > 1 && !s.headSent && s.replayable && s.idempotent && s.tries < s.servers:
            return (.anotherSlot(overloaded: false), ExchangeNote(.warning, "app \(app): slot \(s.slot): \(UpstreamError.timeout); trying another server"))
        case .closedBeforeAnswer where s.reusedConnection && s.replayable:
            return (.reconnect, ExchangeNote(.debug, "kept connection was closed by the app; retrying on a new one"))
        case .closedBeforeAnswer where s.replayable && s.idempotent && s.tries < max(2, s.servers):
            return (.anotherSlot(overloaded: false),
                    ExchangeNote(.warning, "app \(app): slot \(s.slot) closed the connection before answering; " + (s.servers > 1 ? "trying another server" : "retrying once")))
        case .closedBeforeAnswer:
            return (s.headSent ? .close : .respond(status: 502, retryAfter: nil), ExchangeNote(.error, "\(UpstreamError.closedEarly)"))
        case .overloaded where s.replayable && s.tries <= slotCount:
            return (.anotherSlot(overloaded: true),
                    ExchangeNote(.info, "app \(app): slot \(s.slot) answered FCGI_OVERLOADED; trying another slot"))
        case .overloaded:
            return (.respond(status: 503, retryAfter: "1"), ExchangeNote(.warning, "\(UpstreamError.overloaded)"))
        case .broken(let e):
            return (s.headSent ? .close : .respond(status: e.status, retryAfter: nil), ExchangeNote(.error, "\(e)"))
        }
    }

    /// Retry-After for a 503 from the queue: queue_timeout, rounded up, at least 1 s.
    public static func retryAfter(_ queueTimeout: Double) -> String { String(max(1, Int(queueTimeout.rounded(.up)))) }
}
