import HTTPWire

/// Reading requests from one client connection, sans-IO, for every worker class: the
/// bytes a driver has read go in, request heads and body pieces come out, and with them
/// the one deadline the driver must keep and what to do when it passes.
///
/// The deadlines are the slowloris guards of nginx and gunicorn:
/// - a new connection must send its head within `header`;
/// - a kept connection may idle `keepalive` before its next request, then the head
///   must be whole within `header` of its first byte;
/// - a body read must make progress every `body`, and be whole within `bodyTotal`.
/// Past a deadline, a client that had begun a request gets 408; an idle one is closed
/// without a word. While a request is being served, the intake sets no deadline (the
/// exchange has its own). Time comes in as a value: the tests run on a fake clock.
public struct RequestIntake: Sendable {
    /// One per worker, shared by reference: an idle connection carries 8 bytes for it,
    /// not 32 (10,000 idle connections are a target of the benchmark).
    public final class Timeouts: Sendable {
        public let header: Double
        public let keepalive: Double
        public let body: Double
        public let bodyTotal: Double

        public init(header: Double, keepalive: Double, body: Double, bodyTotal: Double) {
            self.header = header
            self.keepalive = keepalive
            self.body = body
            self.bodyTotal = bodyTotal
        }
    }

    public enum Event: Sendable, Equatable {
        case head(HTTPRequestHead)
        /// Body bytes (de-chunked): this range of the input passed to `next`.
        case body(Range<Int>)
        /// The body is whole.
        case end
        /// Nothing more until more bytes arrive.
        case needMore
    }

    /// What the driver does when `deadline` has passed.
    public enum Expiry: Sendable, Equatable {
        /// Nothing of a request arrived: close quietly.
        case close
        /// A request had begun: answer 408 and close.
        case respond408
    }

    public var parser: HTTPRequestParser
    public let timeouts: Timeouts
    /// When the client must have sent more; infinity while a request is served.
    public private(set) var deadline: Double
    private var bodyEnd = Double.infinity
    /// A byte of the current request has arrived (reset by `awaitNextRequest`).
    public private(set) var sawByte = false
    /// The driver is reading a body (`startBody` until `.end`).
    public private(set) var readingBody = false

    /// A new connection, accepted at `now`. `capIdle` lowers an idle deadline (a drain).
    public init(limits: HTTPLimits, timeouts: Timeouts, now: Double, capIdle: (Double) -> Double = { $0 }) {
        parser = HTTPRequestParser(limits: limits)
        self.timeouts = timeouts
        deadline = capIdle(now + timeouts.header)
    }

    public var expiry: Expiry { sawByte || readingBody ? .respond408 : .close }

    public func expired(at now: Double) -> Bool { now >= deadline }

    /// The response went out and the connection stays: wait `keepalive` for the next
    /// request, or less if `capIdle` says so (a drain).
    public mutating func awaitNextRequest(now: Double, capIdle: (Double) -> Double = { $0 }) {
        sawByte = false
        readingBody = false
        bodyEnd = .infinity
        deadline = capIdle(now + timeouts.keepalive)
    }

    /// Lowers the deadline of a connection that has no request under way (a drain caps
    /// idle waits); a request that has begun keeps its own.
    public mutating func capIdleDeadline(_ cap: (Double) -> Double) {
        if !sawByte && !readingBody { deadline = cap(deadline) }
    }

    /// The driver reads the body of the head it just got: each read within `body`, the
    /// whole within `bodyTotal`.
    public mutating func startBody(now: Double) {
        readingBody = true
        bodyEnd = now + timeouts.bodyTotal
        deadline = min(now + timeouts.body, bodyEnd)
    }

    /// The next request head in `input`, or nil with `.needMore`'s deadline set. What is
    /// left of a body nobody read (and the end of a bodiless message) is skipped here,
    /// so no driver decides it.
    public mutating func nextHead(_ input: ArraySlice<UInt8>, now: Double) throws(HTTPParseError) -> (consumed: Int, head: HTTPRequestHead?) {
        var consumed = 0
        while true {
            let step = try next(input[(input.startIndex + consumed)...], now: now)
            consumed += step.consumed
            switch step.event {
            case .head(let head): return (consumed, head)
            case .needMore: return (consumed, nil)
            case .body, .end: continue
            }
        }
    }

    /// Parses what `input` holds (the bytes read and not yet consumed): the driver drops
    /// `consumed` bytes from its front, acts on the event, and calls again until `.needMore`.
    public mutating func next(_ input: ArraySlice<UInt8>, now: Double) throws(HTTPParseError) -> (consumed: Int, event: Event) {
        var consumed = 0
        while true {
            let base = consumed
            let step = try parser.parse(input[(input.startIndex + consumed)...])
            consumed += step.consumed
            switch step.event {
            case .head(let head)?:
                sawByte = true
                deadline = .infinity  // the exchange's deadlines rule while it is served
                return (consumed, .head(head))
            case .body(let r)?:
                return (consumed, .body((base + r.lowerBound)..<(base + r.upperBound)))
            case .end?:
                if readingBody {
                    readingBody = false
                    deadline = .infinity
                    return (consumed, .end)
                }
                continue  // the end of a bodiless message: on to the next head
            case nil:
                if step.consumed > 0 { continue }  // blank lines skipped, a partial chunk line
                if readingBody {
                    deadline = min(now + timeouts.body, bodyEnd)
                } else if !sawByte && consumed < input.count {
                    sawByte = true  // the first bytes of a head: the header timeout starts
                    deadline = now + timeouts.header
                }
                return (consumed, .needMore)
            }
        }
    }
}
