import HTTPWire

/// What a session needs of its worker, passed into each call (not stored: an idle
/// connection carries no reference for it).
public protocol SessionHost {
    func nextRequestID() -> RequestID
    /// Whether a response to `head` may offer keep-alive (the client asked, the server
    /// keeps connections, and the worker is not draining or at max_requests).
    func offersKeepAlive(to head: HTTPRequestHead) -> Bool
    func httpDate() -> String
    /// Lowers an idle deadline while the worker drains.
    func idleDeadline(_ deadline: Double) -> Double
    /// A connection the client wanted kept, closed because the worker drains (it lingers).
    func closedByDrain(_ head: HTTPRequestHead) -> Bool
}

/// One client connection, sans-IO, for every worker class: the bytes a driver read go
/// in, and steps come out for it to carry out. The session owns the connection's input
/// buffer, its intake (heads, bodies, the slowloris deadlines), the current request's
/// record and every decision about the connection: keep-alive or close, lingering, the
/// error pages, the 408s, 100-continue, reading the body before an exchange, and local
/// redirects (capped). The driver does the I/O, routes (the session says when), runs
/// exchanges, and writes the notes and the access log.
///
/// Every exchange gets the request's body whole first, held by the driver (memory, then
/// an unlinked temporary file): a slow upload never holds an app process or a CGI
/// place, the app gets CONTENT_LENGTH even for a chunked body, and a retry can send it
/// again. This is nginx's default (fastcgi_request_buffering on).
public struct ClientSession {
    public enum Step {
        /// More client bytes are needed: read them (`received`), or wait until `deadline`
        /// (`timedOut`); the end of the stream is `clientClosed`.
        case read
        /// A PROXY protocol header named the real client.
        case proxied(address: String, port: Int)
        /// A request head: make its record (`begin`).
        case begin(HTTPRequestHead)
        /// Route `record.target`, then answer with `answered`, `refuse` or `forward`.
        case route(RequestRecord)
        /// A piece of the request body (de-chunked): keep it with the request's body
        /// (`bodyHoldFailed` if that fails).
        case holdBody(ArraySlice<UInt8>)
        /// The request and its whole body are in hand: run its exchange, then `exchangeEnded`.
        case exchange(RequestRecord)
        /// Write these bytes to the client (after what is queued).
        case send([UInt8])
        /// Make sure everything queued reaches the client, then `flushed` (or `clientGone`).
        case flush
        /// The request is over: log it and count it.
        case finished(RequestRecord)
        /// Close the connection; lingering, when the client may still be sending.
        case close(linger: Bool)
    }

    @usableFromInline enum Phase: UInt8 {
        case head, begin, routing, sendContinue, body, exchanging, responding, flushing, finishing, closing, closed
    }

    public private(set) var input: [UInt8] = []
    public private(set) var inputStart = 0
    public private(set) var intake: RequestIntake
    // (The small fields follow the intake: they fit in its tail padding, and an idle
    // connection is 8 bytes smaller; 10,000 of them are a target of the benchmark.)
    @usableFromInline var phase = Phase.head
    var expectsProxyHeader: Bool
    /// After this response: serve another request, or close (and linger).
    var keepAfter = false
    var linger = false
    public private(set) var record: RequestRecord? = nil
    /// What to log, for the driver to take after each step (`takeNotes`).
    public private(set) var notes: [ExchangeNote] = []
    /// An error page the session made, sent before the flush.
    var pendingPage: [UInt8] = []

    public init(limits: HTTPLimits, timeouts: RequestIntake.Timeouts, now: Double, proxyHeader: Bool,
                capIdle: (Double) -> Double = { $0 }) {
        intake = RequestIntake(limits: limits, timeouts: timeouts, now: now, capIdle: capIdle)
        expectsProxyHeader = proxyHeader
    }

    // (The getters below are @inlinable: a driver reads them through its connection
    // object, and a call across modules copied the whole session, with a retain and a
    // release of each of its buffers, for every read.)

    /// When the client must have sent more (head and body phases; infinity otherwise).
    @inlinable @inline(__always) public var deadline: Double { phase == .head || phase == .body ? intake.deadline : .infinity }
    @inlinable @inline(__always) public var unconsumed: ArraySlice<UInt8> { input[inputStart...] }
    /// Between requests, with nothing of the next one arrived.
    @inlinable @inline(__always) public var isIdle: Bool { phase == .head && !intake.sawByte && inputStart == input.count }
    /// The driver reads (and the session parses) only in these phases; what the client
    /// sends meanwhile waits in the socket.
    @inlinable @inline(__always) public var wantsInput: Bool { phase == .head || phase == .body }

    public mutating func takeNotes() -> [ExchangeNote] {
        defer { notes = [] }
        return notes
    }

    // MARK: - Events

    /// Bytes read from the client.
    public mutating func received(_ bytes: ArraySlice<UInt8>) {
        if inputStart > 0 && inputStart > input.count / 2 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
        input += bytes
    }

    /// The connection turns out to speak another protocol (HTTP/2): what it sent so far
    /// goes to that, and this session reads nothing more.
    public mutating func takeUnconsumed() -> [UInt8] {
        defer { consume(input.count - inputStart) }
        return Array(input[inputStart...])
    }

    /// The client closed its side (or reset): nothing more will come.
    public mutating func clientClosed() {
        if phase == .body, let r = record {
            notes.append(ExchangeNote(.info, "client closed the connection during the request body"))
            r.status = 400
            finish(keep: false, linger: false)
        } else {
            close(linger: false)
        }
    }

    /// `deadline` passed. A request that had begun gets 408 (logged with it); an idle
    /// connection is closed without a word.
    public mutating func timedOut(_ host: some SessionHost, now: Double) {
        switch phase {
        case .head where intake.expiry == .respond408:
            record = .unparsed(id: host.nextRequestID(), started: now)
            respondError(408, [], keep: false, host)
        case .body:
            respondError(408, [], keep: false, host)
        default:
            close(linger: false)
        }
    }

    /// The driver made the request's record (its id, start and keep-alive).
    public mutating func begin(_ r: RequestRecord) {
        record = r
        phase = .routing
    }

    /// The driver wrote (or queued) a whole response of its own: a page, or a static
    /// file's head and bytes. It offered `record.responseKeepAlive`.
    public mutating func answered(status: Int, bytes: Int) {
        guard let r = record else { return }
        r.status = status
        r.bytesSent += bytes
        respond(keep: r.responseKeepAlive, linger: !r.bodyWhole)
    }

    /// Answers with an error page (and these headers).
    public mutating func refuse(_ status: Int, _ headers: [(String, String)] = [], _ host: some SessionHost) {
        respondError(status, headers, keep: true, host)
    }

    /// The route goes to an exchange: the body is read first, unless it is in hand.
    public mutating func forward(now: Double) {
        guard let r = record else { return }
        guard !r.redirected && !r.bodyDone && r.hasBody else {
            phase = .exchanging
            return
        }
        intake.startBody(now: now)
        phase = r.head.expectContinue ? .sendContinue : .body
    }

    /// Keeping a piece of the body failed (a full disk): 500.
    public mutating func bodyHoldFailed(_ host: some SessionHost) {
        respondError(500, [], keep: false, host)
    }

    public mutating func exchangeEnded(_ end: ExchangeEnd, _ host: some SessionHost) {
        guard let r = record else { return }
        switch end {
        case .done(let keep):
            r.keepAlive = keep
            respond(keep: keep, linger: false)
        case .failed(let status, let headers, let keep):
            respondError(status, headers, keep: keep, host)
        case .redirect(let location):
            let (allowed, note) = r.redirects.follow(location)
            notes.append(note)
            guard allowed else { return respondError(500, [], keep: true, host) }
            r.target = location
            r.keepAlive = r.responseKeepAlive
            phase = .routing
        case .offload(let o):
            // Routed once more, to the file (never to another exchange: no loop to cap).
            notes.append(ExchangeNote(.debug, "the app handed the response over (\(o.target))"))
            r.offload = o
            r.keepAlive = r.responseKeepAlive
            phase = .routing
        case .clientGone:
            clientGone(unsent: 0)
        }
    }

    /// All queued output reached the client.
    public mutating func flushed() {
        if phase == .flushing { phase = .finishing }
    }

    /// The client reset the connection or stopped taking output; `unsent` bytes of the
    /// response never reached it.
    public mutating func clientGone(unsent: Int) {
        guard let r = record else { return close(linger: false) }
        r.clientGone = true
        r.bytesSent -= unsent
        finish(keep: false, linger: false)
    }

    /// A drain began: an idle connection's deadline comes sooner.
    public mutating func capIdle(_ cap: (Double) -> Double) {
        if phase == .head { intake.capIdleDeadline(cap) }
    }

    // MARK: - Steps

    public mutating func next(_ host: some SessionHost, now: Double) -> Step {
        switch phase {
        case .head:
            return readHead(host, now: now)
        case .begin:
            return .read  // (the driver has not made the record yet)
        case .routing:
            return record.map { .route($0) } ?? .close(linger: false)
        case .sendContinue:
            phase = .body
            return .send(HTTPResponseWriter.continueHead)
        case .body:
            return readBody(host, now: now)
        case .exchanging:
            return record.map { .exchange($0) } ?? .close(linger: false)
        case .responding:
            if !pendingPage.isEmpty {
                defer { pendingPage = [] }
                return .send(pendingPage)
            }
            phase = .flushing
            return .flush
        case .flushing:
            return .flush
        case .finishing:
            guard let r = record else { return .close(linger: false) }
            record = nil
            if keepAfter {
                phase = .head
                intake.awaitNextRequest(now: now, capIdle: host.idleDeadline)
            } else {
                phase = .closing
                linger = linger || host.closedByDrain(r.head)
            }
            return .finished(r)
        case .closing, .closed:
            phase = .closed
            return .close(linger: linger)
        }
    }

    mutating func readHead(_ host: some SessionHost, now: Double) -> Step {
        do {
            if expectsProxyHeader {
                guard case .header(let source, let n) = try ProxyProtocol.parse(unconsumed) else { return .read }
                consume(n)
                expectsProxyHeader = false
                if let source { return .proxied(address: source.address, port: source.port) }
            }
            let step = try intake.nextHead(unconsumed, now: now)
            consume(step.consumed)
            guard let head = step.head else { return .read }
            phase = .begin
            return .begin(head)
        } catch {
            notes.append(ExchangeNote(.info, "bad request: \(error.message)"))
            record = .unparsed(id: host.nextRequestID(), started: now)
            respondError(error.status, [], keep: false, host)
            linger = true  // what follows the bad bytes is still coming
            return next(host, now: now)
        }
    }

    mutating func readBody(_ host: some SessionHost, now: Double) -> Step {
        do {
            let step = try intake.next(unconsumed, now: now)
            let base = inputStart
            // (The piece is taken before `consume`, which may free the buffer.)
            let piece: ArraySlice<UInt8>? = if case .body(let range) = step.event {
                input[(base + range.lowerBound)..<(base + range.upperBound)]
            } else { nil }
            consume(step.consumed)
            switch step.event {
            case .body:
                return .holdBody(piece ?? [])
            case .end:
                record?.bodyDone = true
                phase = .exchanging
                return next(host, now: now)
            case .head, .needMore:  // (a head cannot come before the body's end)
                return .read
            }
        } catch {
            notes.append(ExchangeNote(.info, "bad request body: \(error.message)"))
            respondError(error.status, [], keep: false, host)
            return next(host, now: now)
        }
    }

    // MARK: - Decisions

    /// An error page; the connection stays only if asked and the request was read whole
    /// (otherwise it lingers: the client may still be sending the body).
    mutating func respondError(_ status: Int, _ headers: [(String, String)], keep: Bool, _ host: some SessionHost) {
        guard let r = record else { return close(linger: false) }
        let k = keep && r.responseKeepAlive
        let page = ResponseHead.error(status, keepAlive: k, date: host.httpDate(), extraHeaders: headers, isHead: r.head.method == "HEAD")
        r.status = status
        r.bytesSent += page.count
        respond(keep: k, linger: !r.bodyWhole)
        pendingPage = page
    }

    /// The response is on its way: flush it, then log it.
    mutating func respond(keep: Bool, linger l: Bool) {
        keepAfter = keep
        linger = l
        phase = .responding
    }

    mutating func finish(keep: Bool, linger l: Bool) {
        keepAfter = keep
        linger = l
        phase = .finishing
    }

    mutating func close(linger l: Bool) {
        linger = l
        phase = .closing
    }

    mutating func consume(_ n: Int) {
        inputStart += n
        if inputStart == input.count {
            input = []  // an idle connection holds no buffer
            inputStart = 0
        }
    }
}
