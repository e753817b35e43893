import HTTPWire

/// A request's id in the logs, "<worker pid in hex>-<its counter in hex>": made into text
/// only when a log line names it (most requests are never named).
public struct RequestID: CustomStringConvertible, Sendable {
    public let prefix: String
    public let number: UInt64

    public init(prefix: String, number: UInt64) {
        self.prefix = prefix
        self.number = number
    }

    public var description: String { prefix + String(number, radix: 16) }
}

/// One request on a client connection, from its head to the end of its response: what
/// the session decides with, and what the access log and /metrics get. Open, so that a
/// driver can keep its own per-request I/O state in the same object (EpollRequest).
open class RequestRecord {
    public let head: HTTPRequestHead
    public let id: RequestID
    /// When its head was whole (monotonic seconds): the access log's request time.
    public let started: Double
    /// The target being served: the request's own, or a local redirect's.
    public var target: String
    public var redirects = LocalRedirects()
    /// Whether the response may keep the connection (the client's wish, the server's
    /// keepalive setting and the drain; then the exchange's answer).
    public var keepAlive: Bool
    /// The body has been read whole (false for a bodiless request: see `bodyWhole`).
    public var bodyDone = false
    /// The status that went out (0: none yet), the bytes written, the app's time.
    public var status = 0
    public var bytesSent = 0
    public var upstreamTime: Double? = nil
    /// The client went away before it had the whole response: logged 499.
    public var clientGone = false
    /// The route label /metrics counts it under, from its first routing.
    public var label: String? = nil
    /// What the app handed over (X-Accel-Redirect, X-Sendfile): the next routing finds
    /// that file instead of the target's route.
    public var offload: Offload? = nil
    /// The route compresses (nginx's gzip): what it means for this request's client.
    public var gzip: GzipChoice? = nil
    /// The version the access log shows when it is not the request's (a 400 before one was read).
    public var logVersion: String? = nil
    /// An HTTP/2 stream's request (the engine reads it as HTTP/1.1).
    public var http2: Bool { logVersion == "HTTP/2.0" }

    public init(head: HTTPRequestHead, id: RequestID, started: Double, keepAlive: Bool) {
        self.head = head
        self.id = id
        self.started = started
        self.target = head.target
        self.keepAlive = keepAlive
    }

    public var hasBody: Bool { head.framing != .none && head.framing != .contentLength(0) }
    /// Nothing of the body is left in the socket: the connection can carry another request.
    public var bodyWhole: Bool { !hasBody || bodyDone }
    public var redirected: Bool { target != head.target }
    /// What the access log and the metrics say: 499 (nginx's "client closed request")
    /// for a response the client did not take whole, whatever it had started as.
    public var loggedStatus: Int { clientGone ? 499 : status }
    /// Whether a response made now may offer keep-alive.
    public var responseKeepAlive: Bool { keepAlive && bodyWhole }
    /// The body length the app is told (nil: no body; a redirect's GET has none).
    public var bodyLengthKnown: Bool { !redirected && head.framing != .none }

    /// The record of a request that could not be parsed (its access-log line shows "-").
    public static func unparsed(id: RequestID, started: Double) -> RequestRecord {
        let head = HTTPRequestHead(method: "-", target: "-", version: .http1_1, headers: HTTPHeaders(), keepAlive: false,
                                   expectContinue: false, framing: .none, host: nil)
        let r = RequestRecord(head: head, id: id, started: started, keepAlive: false)
        r.logVersion = "-"
        return r
    }
}

/// How an exchange (FastCGI or CGI) ended, as its driver reports it to the session.
public enum ExchangeEnd {
    /// Its response went out (or is queued); the connection goes on if `keepAlive`.
    case done(keepAlive: Bool)
    /// Nothing was sent: the session answers with this status and headers, and keeps the
    /// connection only if `keepAlive` (and the request allows it).
    case failed(Int, [(String, String)], keepAlive: Bool = true)
    /// A local redirect (`Location: /path`, no Status): routed again, up to the cap.
    case redirect(String)
    /// The app handed the response to gatewayd: the file is found and sent instead.
    case offload(Offload)
    /// The client left before it had the whole response.
    case clientGone
}

extension AppExchange.Step {
    /// How the exchange ended, for the steps that end it (nil for the others): the same
    /// for both drivers.
    public var exchangeEnd: ExchangeEnd? {
        switch self {
        case .respond(let status, let retryAfter): .failed(status, retryAfter.map { [("Retry-After", $0)] } ?? [])
        case .redirect(let location): .redirect(location)
        case .offload(let o): .offload(o)
        case .finished(let keep): .done(keepAlive: keep)
        case .closeClient: .done(keepAlive: false)
        default: nil
        }
    }
}

extension CGIDecision {
    /// How the CGI exchange ended, for the session: the same for both drivers.
    public var exchangeEnd: ExchangeEnd {
        switch self {
        case .done(let keep): .done(keepAlive: keep)
        case .respond(let status): .failed(status, [], keepAlive: false)
        case .close: .done(keepAlive: false)
        case .clientGone: .clientGone
        case .localRedirect(let location): .redirect(location)
        case .offload(let o): .offload(o)
        }
    }
}
