import FastCGIWire
import HTTPWire

/// One request to a FastCGI app, as a machine with no I/O: the driver asks `next()` what
/// to do, does it (blocking or not, as its worker class does), and reports back. The
/// whole life of the request is here, once for every worker class: take a slot, open a
/// connection or reuse a kept one, send the records and the body, relay the answer,
/// and after a failure UpstreamPolicy's decision (a new connection, another slot, an
/// error page, or a close). The driver owns the sockets, the lease and the clock.
///
/// A step that waits for the driver (`acquireSlot`, `connect`, `write`, `supplyBody`,
/// `read`) is returned again until the driver reports; the others (`release`,
/// `discardConnection`) are returned once, and the driver carries them out before it
/// asks again.
public struct AppExchange {
    /// What the exchange knows of its app, set once at boot.
    public struct App: Sendable {
        public let name: String
        public let slotCount: Int
        public let queueTimeout: Double
        public let keepConnection: Bool
        public let maxResponseHead: Int
        public let connectTimeout: Double
        public let readTimeout: Double
        /// request_timeout (0: none) and slow_request (0: none), from when the app has the request.
        public let requestTimeout: Double
        public let slowRequest: Double
        /// A connect app's servers (a failed GET or HEAD retries on another one).
        public let servers: Int

        public init(name: String, slotCount: Int, queueTimeout: Double, keepConnection: Bool, maxResponseHead: Int,
                    connectTimeout: Double, readTimeout: Double, requestTimeout: Double = 0, slowRequest: Double = 0, servers: Int = 1) {
            self.servers = servers
            self.requestTimeout = requestTimeout
            self.slowRequest = slowRequest
            self.name = name
            self.slotCount = slotCount
            self.queueTimeout = queueTimeout
            self.keepConnection = keepConnection
            self.maxResponseHead = maxResponseHead
            self.connectTimeout = connectTimeout
            self.readTimeout = readTimeout
        }
    }

    /// Where the request body comes from.
    public enum Body: Sendable {
        /// No body (or a local redirect, which the app sees as a GET): an empty STDIN.
        case none
        /// Held in memory: sent with the records, again on a retry.
        case memory([UInt8])
        /// Supplied by the driver piece by piece (`bodyPiece`, then `bodyEnd`): from a
        /// temporary file (replayable: it starts again at offset 0 on a retry), or
        /// streamed from the client (not replayable).
        case pieces(replayable: Bool)
    }

    public enum Step: Sendable, Equatable {
        /// Take a slot (its queue may wait); then `granted` or `noSlot`.
        case acquireSlot
        /// Open a new connection to the slot's address; then `connected` or `connectFailed`.
        case connect
        /// Close the app connection in hand (a kept one the request must not use, or one
        /// the app closed); then ask again.
        case discardConnection
        /// Write `outgoing` to the app; then `wrote` or `writeFailed`.
        case write
        /// Give the next piece of the body from `bodyOffset` (`bodyPiece`) or its end
        /// (`bodyEnd`); a body streamed from the client that breaks off: `bodyFailed`.
        case supplyBody
        /// Read what the app sends; then `received`, `closed` or `timedOut`.
        case read
        /// Give the slot back with the connection in hand (kept for the next request only
        /// when `reusable`); then ask again.
        case release(reusable: Bool, served: Bool, overloaded: Bool)
        /// The app has held the request `elapsed` seconds: past slow_request (`end` false),
        /// write the slow-request entry and go on; past request_timeout (`end` true), the
        /// entry, then end the process that holds it (hosted) or abort the request
        /// (connect). Then ask again (the release and the 504 follow).
        case inspect(elapsed: Double, end: Bool)
        /// The end, with nothing sent to the client: answer with this error page.
        case respond(status: Int, retryAfter: String?)
        /// The end: the app asked for a local redirect (Location: /path, no Status).
        case redirect(String)
        /// The end: the app handed the response to gatewayd (X-Accel-Redirect, X-Sendfile).
        case offload(Offload)
        /// The end: the response is complete; keep the client connection when `keepAlive`.
        case finished(keepAlive: Bool)
        /// The end: the head went out but the response broke; close the client connection.
        case closeClient
    }

    enum Phase: Sendable, Equatable {
        case slot, connect, send, read
        case over(Step)
    }

    public let app: App
    let params: [(name: String, value: String)]
    let body: Body
    let idempotent: Bool
    let request: HTTPRequestHead
    let keepAliveWanted: Bool
    let queuedSince: Double
    let requestStartMicros: Int64

    var phase = Phase.slot
    /// Steps that come before the phase's own: a release, a discard.
    var oneShot: [Step] = []
    public private(set) var tries = 0
    public private(set) var slot = -1
    var requestID: UInt16 = 0
    var reusedConnection = false
    /// The request as FastCGI records: outgoing[outgoingSent...] is still to be written.
    public internal(set) var outgoing: [UInt8] = []
    public internal(set) var outgoingSent = 0
    /// The driver's body pieces given so far on this connection.
    public internal(set) var bodyOffset: UInt64 = 0
    var bodyEnded = false
    /// The app closed its side while we wrote: what it sent may still be read.
    var writeFailed = false
    var relay: ResponseRelay? = nil
    /// Deadline of the current wait (connect, backend_read), in the driver's clock.
    var waitDeadline = Double.infinity { didSet { deadline = min(waitDeadline, inspectAt, hardDeadline) } }
    /// While the app holds the request: when it counts as slow (the slow-request entry)
    /// and when it has held it too long (request_timeout).
    var inspectAt = Double.infinity { didSet { deadline = min(waitDeadline, inspectAt, hardDeadline) } }
    var hardDeadline = Double.infinity { didSet { deadline = min(waitDeadline, inspectAt, hardDeadline) } }
    /// When the app was given the request (its connection open, the first record sent).
    public internal(set) var heldSince = 0.0
    /// The next time the driver must report (`timedOut`), in its clock: the earliest of
    /// the three. Stored, not computed: a driver reads it through its class, and a
    /// computed property read there copied the whole exchange each time.
    public private(set) var deadline = Double.infinity
    /// When the slot was granted (upstream time in the access log).
    public private(set) var grantedAt = 0.0
    /// What the last attempt's server did (passive health): a plain byte, so the
    /// exchange stays cheap to copy (an UpstreamFailure carries Strings).
    public private(set) var lastFailure = ServerFault.none
    /// Status of the last head the app sent (0: none).
    public private(set) var status = 0
    var notes: [ExchangeNote] = []
    /// The route's gzip for this request, given to the response relay.
    public var gzip: GzipChoice? = nil

    /// `queuedSince`: when the request began to wait for a slot (the driver's clock);
    /// `requestStartMicros`: when it reached gatewayd, in epoch microseconds (0: unknown).
    public init(app: App, request: HTTPRequestHead, params: [(name: String, value: String)], body: Body, keepAlive: Bool,
                queuedSince: Double = 0, requestStartMicros: Int64 = 0) {
        self.queuedSince = queuedSince
        self.requestStartMicros = requestStartMicros
        self.app = app
        self.request = request
        self.params = params
        self.body = body
        self.keepAliveWanted = keepAlive
        idempotent = request.method == "GET" || request.method == "HEAD" || request.method == "OPTIONS"
    }

    /// A body streamed from the client cannot be sent twice: such a request never rides
    /// on a kept connection and is never retried.
    public var replayable: Bool {
        if case .pieces(false) = body { return false }
        return true
    }

    /// The response head has gone to the client: a failure now can only close.
    public var headSent: Bool { relay?.headSent ?? false }
    /// The app has begun to answer (it did the work: the slot counts it as served).
    public var answered: Bool { (relay?.bytesReceived ?? 0) > 0 }

    /// Still sending the request (a driver streaming a body stops when this turns false).
    public var wantsBody: Bool { phase == .send && !bodyEnded }

    /// What to do now.
    public mutating func next() -> Step {
        if !oneShot.isEmpty { return oneShot.removeFirst() }
        switch phase {
        case .slot: return .acquireSlot
        case .connect: return .connect
        case .send:
            if outgoingSent < outgoing.count { return .write }
            if !bodyEnded { return .supplyBody }
            phase = .read
            return .read
        case .read: return .read
        case .over(let step): return step
        }
    }

    /// The log lines of what happened since the last call.
    public mutating func takeNotes() -> [ExchangeNote] {
        defer { notes = [] }
        return notes
    }

    // MARK: - The driver's reports

    /// A slot was granted. `kept`: its lease brings a connection kept from an earlier
    /// request (the driver has checked it is still open, as far as it can tell).
    public mutating func granted(slot: Int, requestID: UInt16, kept: Bool, now: Double) {
        guard phase == .slot else { return }
        tries += 1
        self.slot = slot
        self.requestID = requestID
        grantedAt = now
        if kept && replayable {
            reusedConnection = true
            startSending(now)
        } else {
            if kept { oneShot.append(.discardConnection) }
            phase = .connect
            waitDeadline = now + app.connectTimeout
        }
    }

    public enum NoSlot: Sendable { case queueFull, queueTimedOut }

    /// No slot: the queue is full, or none came within queue_timeout.
    public mutating func noSlot(_ why: NoSlot) {
        guard phase == .slot else { return }
        fail(why == .queueFull ? .queueFull : .queueTimedOut, now: 0)
    }

    public mutating func connected(now: Double) {
        guard phase == .connect else { return }
        reusedConnection = false
        startSending(now)
    }

    public mutating func connectFailed(_ error: UpstreamError, now: Double) {
        guard phase == .connect else { return }
        fail(.unreachable(error), now: now)
    }

    /// `n` bytes of `outgoing` were written.
    public mutating func wrote(_ n: Int, now: Double) {
        outgoingSent += n
        if outgoingSent == outgoing.count {
            outgoing.removeAll(keepingCapacity: true)
            outgoingSent = 0
        }
        waitDeadline = now + app.readTimeout
    }

    /// Writing failed: the app closed its side. Its answer, if it sent one, is read next.
    public mutating func writeFailed(now: Double) {
        guard phase == .send else { return }
        writeFailed = true
        outgoing = []
        outgoingSent = 0
        bodyEnded = true
        phase = .read
        waitDeadline = now + app.readTimeout
    }

    /// The next piece of the body, at `bodyOffset`.
    public mutating func bodyPiece(_ piece: ArraySlice<UInt8>) {
        guard phase == .send, !piece.isEmpty else { return }
        bodyOffset += UInt64(piece.count)
        piece.withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: requestID, bytes: $0, into: &outgoing) }
    }

    /// The body is all given: the empty STDIN record follows.
    public mutating func bodyEnd() {
        guard phase == .send, !bodyEnded else { return }
        bodyEnded = true
        FastCGIEncoder.appendEndOfStream(.stdin, requestID: requestID, into: &outgoing)
    }

    /// The client's body broke off or was malformed (streamed bodies only): answer
    /// `status`; nothing of the response exists yet.
    public mutating func bodyFailed(status: Int) {
        oneShot.append(.release(reusable: false, served: true, overloaded: false))
        phase = .over(.respond(status: status, retryAfter: nil))
    }

    /// Bytes from the app; what the client should get is appended to `out`.
    /// `mayKeepAlive`: the worker is not draining; `date`: the Date header's value.
    public mutating func received(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8], mayKeepAlive: Bool,
                                  date: @autoclosure () -> String, now: Double) {
        guard phase == .send || phase == .read, relay != nil else { return }
        waitDeadline = now + app.readTimeout
        do {
            try relay!.receive(bytes, into: &out, mayKeepAlive: mayKeepAlive, date: date(), notes: &notes)
        } catch {
            let failure = relay!.failure(for: error)
            return fail(failure, now: now)
        }
        status = relay!.status
        guard relay!.ended else { return }
        let r = relay!
        relay = nil
        (inspectAt, hardDeadline) = (.infinity, .infinity)
        // Reused only when the app took the whole request and ended on a record boundary.
        let whole = !writeFailed && bodyEnded && outgoingSent == outgoing.count
        oneShot.append(.release(reusable: r.reusable && whole, served: true, overloaded: false))
        if let location = r.redirect {
            phase = .over(.redirect(location))
        } else if let o = r.offload {
            phase = .over(.offload(o))
        } else {
            phase = .over(.finished(keepAlive: r.keepAlive))
        }
    }

    /// The app closed (or reset) the connection.
    public mutating func closed(now: Double) {
        guard phase == .send || phase == .read, let r = relay else { return }
        fail(r.failureOnClose, now: now)
    }

    /// The current deadline passed: a connect that did not complete, or an app silent
    /// for the read timeout.
    public mutating func timedOut(now: Double) {
        if phase == .send || phase == .read {
            if now >= hardDeadline {
                oneShot.append(.inspect(elapsed: now - heldSince, end: true))
                return fail(.broken(.deadline(app.requestTimeout)), now: now)
            }
            if now >= inspectAt {
                inspectAt = .infinity
                oneShot.append(.inspect(elapsed: now - heldSince, end: false))
                if now < waitDeadline { return }
            }
        }
        switch phase {
        case .connect: fail(.unreachable(.connect("timed out after \(app.connectTimeout) s")), now: now)
        case .send, .read: fail(.broken(.timeout), now: now)
        default: break
        }
    }

    /// The client went away: the slot goes back and the connection with it (the app
    /// may still be writing). Nothing more to do.
    public mutating func clientGone() {
        switch phase {
        case .send, .read, .connect:
            oneShot = [.release(reusable: false, served: answered, overloaded: false)]
        default:
            oneShot = oneShot.filter { if case .release = $0 { return true } else { return false } }
        }
        relay = nil
        (inspectAt, hardDeadline) = (.infinity, .infinity)
        phase = .over(.finished(keepAlive: false))
    }

    // MARK: - Inside (sending: AppExchangeSend.swift)

    /// Every failure goes through the one retry table.
    mutating func fail(_ failure: UpstreamFailure, now: Double) {
        let hadSlot = phase != .slot
        (inspectAt, hardDeadline) = (.infinity, .infinity)
        let state = AttemptState(tries: max(tries, 1), slot: slot, reusedConnection: reusedConnection, replayable: replayable,
                                 idempotent: idempotent, headSent: headSent, servers: app.servers)
        lastFailure = ServerFault(failure)
        let (decision, note) = UpstreamPolicy.decide(failure, state, app: app.name, slotCount: app.slotCount,
                                                     queueTimeout: app.queueTimeout)
        notes.append(note)
        if let r = relay { status = r.status }
        relay = nil
        let overloaded = failure == .overloaded
        switch decision {
        case .reconnect:
            oneShot.append(.discardConnection)
            reusedConnection = false
            phase = .connect
            waitDeadline = now + app.connectTimeout
        case .anotherSlot(let overloaded):
            oneShot.append(.release(reusable: false, served: false, overloaded: overloaded))
            phase = .slot
            waitDeadline = .infinity
        case .respond(let code, let retryAfter):
            if hadSlot { oneShot.append(.release(reusable: false, served: false, overloaded: overloaded)) }
            phase = .over(.respond(status: code, retryAfter: retryAfter))
        case .close:
            oneShot.append(.release(reusable: false, served: false, overloaded: false))
            phase = .over(.closeClient)
        }
    }
}
