import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// `worker_class = "thread"`: slow clients never hold a thread (the Waitress property),
/// without a hand-off per request. The `threads` threads share one epoll instance; each
/// takes one event at a time. A client connection between requests is armed one-shot:
/// the thread that gets its event reads what has arrived without blocking, and only when
/// the request head (and a small Content-Length body) is complete does that same thread
/// serve the request with the shared pipeline; otherwise it re-arms the connection and
/// takes the next event. The main thread handles signals and the header, body and
/// keep-alive timeouts. gunicorn's gthread gives a thread the connection before its
/// request is read, and its pool runs dry under slowloris; a loop thread that hands
/// complete requests to a pool (Waitress) costs two more context switches per request.
///
/// @unchecked Sendable: its mutable fields (`waiting`, `active`, `listening`, `stopping`)
/// are read and written only under `state`; the rest are `let`s of types that lock
/// themselves (WorkerContext's counters and its atomic `draining`, Epoll, Condition) or
/// that the pool threads touch only through an atomic (WorkerProcess's heartbeat time;
/// its signal handling and listeners belong to the main thread).
public final class ThreadWorker: @unchecked Sendable {
    /// A client connection between requests (or serving one). Not Sendable and needs no
    /// lock: one thread at a time owns it, the one that took it out of `waiting` under
    /// `state`; the main thread's sweep touches it only while it is in `waiting`, under `state`.
    final class Connection {
        let conn: ClientConnection
        /// The head and body parser with its deadlines (RequestIntake, as every class reads).
        var intake: RequestIntake
        /// The request whose body is still being read.
        var head: HTTPRequestHead? = nil
        /// Its body so far (memory, then a temporary file).
        var body: BufferedBody? = nil
        /// When the request's first byte came (the access log's request time).
        var started: Double

        init(conn: ClientConnection, intake: RequestIntake, now: Double) {
            self.conn = conn
            self.intake = intake
            self.started = now
        }
    }

    static let listenerTag: UInt64 = 1 << 40
    static let armed: Epoll.Events = [.readable, .peerClosed, .oneShot]

    let ctx: WorkerContext
    let process: WorkerProcess
    let pipeline: BlockingPipeline
    let epoll: Epoll

    /// Guards everything below.
    let state = Condition()
    /// Connections waiting for their next request (armed in epoll), by fd.
    var waiting: [Int32: Connection] = [:]
    /// Connections a thread is reading from or serving.
    var active = 0
    var listening = false
    var stopping = false

    public init(context: WorkerContext, process: WorkerProcess) throws {
        ctx = context
        self.process = process
        pipeline = BlockingPipeline(context: context)
        epoll = try Epoll()
        // Request threads only keep the heartbeat fresh; the main thread handles signals.
        context.onWait = { [process] in process.beat() }
    }

    /// Runs until told to stop, the master dies, or max_requests is reached. Returns the exit code.
    public func run() -> Int32 {
        let server = ctx.config.server
        do {
            for l in process.listeners { try l.setNonBlocking(true) }
            setListening(true)
            ctx.onDrain = { [self] in
                setListening(false)
                for (fd, i) in process.takeBacklogAndCloseListeners() { adopt(fd, listener: i) }
            }
            for _ in 0..<server.threads { try Threads.start { [self] in serveEvents() } }
        } catch {
            ctx.logger.critical("cannot start the thread worker: \(error)")
            return 1
        }
        ctx.logger.info("thread worker ready", metadata: ["threads": "\(server.threads)", "listeners": "\(process.listeners.count)"])
        while true {
            process.beat()
            if let ready = try? Poll.wait([(process.signalPipe, Poll.readable)], timeoutMilliseconds: 100), ready[0] != 0 {
                process.handleSignals(ctx)
            }
            if ctx.draining {
                setListening(false)
                shortenIdleDeadlines()
            }
            sweepTimeouts(Host.monotonicSeconds())
            if ctx.draining {
                if state.withLock({ waiting.isEmpty && active == 0 }) { break }
            } else {
                setListening(state.withLock { waiting.count + active } < server.workerConnections)
            }
        }
        state.withLock { stopping = true }
        return 0
    }

    func setListening(_ on: Bool) {
        state.withLock {
            guard on != listening else { return }
            listening = on
            for (i, l) in process.listeners.enumerated() {
                if on { try? epoll.add(l, [.readable, .exclusive], data: Self.listenerTag + UInt64(i)) } else { try? epoll.remove(l) }
            }
        }
    }

    // MARK: - Request threads

    /// One thread's life: take an event, act on it, repeat.
    func serveEvents() {
        let events = Epoll.EventBuffer(capacity: 1)
        while !state.withLock({ stopping }) {
            _ = try? epoll.wait(buffer: events, timeoutMilliseconds: 100) { _, data in
                if data >= Self.listenerTag {
                    acceptAll(process.listeners[Int(data - Self.listenerTag)], index: Int(data - Self.listenerTag))
                } else {
                    readable(Int32(truncatingIfNeeded: data))
                }
            }
        }
    }

    func acceptAll(_ listener: FileDescriptor, index: Int) {
        let cap = ctx.config.server.workerConnections
        while !ctx.draining && state.withLock({ waiting.count + active }) < cap {
            guard let fd = (try? Socket.accept(listener, nonBlocking: true)) ?? nil else { return }
            adopt(fd, listener: index)
        }
    }

    /// A new client connection (non-blocking), waiting for its first request.
    func adopt(_ fd: FileDescriptor, listener index: Int) {
        Socket.setNoDelay(fd)
        let now = Host.monotonicSeconds()
        let c = Connection(conn: ClientConnection(fd: fd, heartbeat: { [process] in process.beat() }),
                           intake: RequestIntake(limits: ctx.limits, timeouts: ctx.intakeTimeouts, now: now, capIdle: ctx.idleDeadline), now: now)
        c.conn.expectsProxyHeader = ctx.speaksProxyProtocol(listener: index)
        ctx.connectionsChanged(by: 1)
        state.withLock { waiting[fd.rawValue] = c }  // before it can report an event
        do { try epoll.add(fd, Self.armed, data: UInt64(UInt32(bitPattern: fd.rawValue))) } catch {
            state.withLock { waiting[fd.rawValue] = nil }
            close(c)
        }
    }

    /// Waits for the next event of a connection this thread is done with for now.
    func rearm(_ c: Connection) {
        state.withLock {
            waiting[c.conn.fd.rawValue] = c
            active -= 1
        }
        do { try epoll.modify(c.conn.fd, Self.armed, data: UInt64(UInt32(bitPattern: c.conn.fd.rawValue))) } catch {
            if state.withLock({ waiting.removeValue(forKey: c.conn.fd.rawValue) }) != nil { close(c) }
        }
    }

    func close(_ c: Connection) {
        c.body?.close()
        c.body = nil
        c.conn.close()
        ctx.connectionsChanged(by: -1)
    }

    func finish(_ c: Connection) {
        state.withLock { active -= 1 }
        close(c)
    }

    func readable(_ fd: Int32) {
        // Taken out of `waiting`: the timeout sweep leaves it alone while we have it.
        guard let c = state.withLock({ () -> Connection? in
            guard let c = waiting.removeValue(forKey: fd) else { return nil }
            active += 1
            return c
        }) else { return }
        do {
            guard let more = try c.conn.readAvailable() else { return rearm(c) }
            guard more else { return finish(c) }
        } catch {
            return finish(c)
        }
        serveReady(c)
    }

    /// Serves every complete request the connection has buffered, then re-arms it.
    func serveReady(_ c: Connection) {
        while true {
            let head: HTTPRequestHead
            do {
                guard let h = try ready(c, now: Host.monotonicSeconds()) else { return rearm(c) }
                head = h
            } catch {
                pipeline.answerBadRequest(c.conn, error, started: c.started)
                return finish(c)
            }
            // The socket stays non-blocking: ClientConnection waits only when a call would block.
            let keep = pipeline.handle(head, c.conn, &c.intake.parser)
            c.conn.takePreread()?.close()  // a body the route did not want
            ctx.requestFinished()
            // Kept even while draining: the response said keep-alive (see WorkerContext.idleDeadline).
            guard keep else {
                c.conn.lingerOnClose = c.intake.parser.leftBodyUnread || ctx.closedByDrain(head)
                return finish(c)
            }
            let now = Host.monotonicSeconds()
            c.started = now
            c.intake.awaitNextRequest(now: now, capIdle: ctx.idleDeadline)
            if c.conn.unconsumed.isEmpty { return rearm(c) }
            // A pipelined request is already here: on to it.
        }
    }

    /// Parses what the connection has buffered. The request is ready when its head and
    /// its whole body are in: the body is de-chunked into memory (64 KiB), then an
    /// unlinked temporary file, as the epoll worker and CGI do, so a slow upload of any
    /// size or framing holds no thread. `Expect: 100-continue` gets its 100 here, when
    /// the loop starts to read. The deadlines are the intake's (the sweep answers 408).
    func ready(_ c: Connection, now: Double) throws(HTTPParseError) -> HTTPRequestHead? {
        if c.head == nil, try c.conn.takeProxyHeader() {
            let sawByte = c.intake.sawByte
            let step = try c.intake.nextHead(c.conn.unconsumed, now: now)
            c.conn.consume(step.consumed)
            c.head = step.head
            if !sawByte && c.intake.sawByte { c.started = now }
        }
        guard var head = c.head else { return nil }
        if head.framing != .none && head.framing != .contentLength(0) {
            if c.body == nil {
                c.body = BufferedBody()
                c.intake.startBody(now: now)
                if head.expectContinue {
                    // 25 bytes on a socket with nothing queued: a non-blocking write takes them.
                    _ = try? c.conn.fd.write(HTTPResponseWriter.continueHead, from: 0)
                    head.expectContinue = false  // answered: the exchanges must not send it again
                    c.head = head
                }
            }
            guard try readBody(c, now: now) else { return nil }
            c.conn.preread = c.body
            c.body = nil
        }
        c.head = nil
        return head
    }

    /// Moves what has arrived of the body into `c.body`; true once it is whole.
    func readBody(_ c: Connection, now: Double) throws(HTTPParseError) -> Bool {
        while true {
            let step = try c.intake.next(c.conn.unconsumed, now: now)
            switch step.event {
            case .body(let r):
                let base = c.conn.unconsumed.startIndex
                do { try c.body?.append(c.conn.buffer[(base + r.lowerBound)..<(base + r.upperBound)]) } catch {
                    ctx.logger.error("cannot buffer the request body: \(error)")
                    throw HTTPParseError(500, "cannot buffer the request body")
                }
                c.conn.consume(step.consumed)
            case .end:
                c.conn.consume(step.consumed)
                return true
            case .head, .needMore:  // (a head cannot come before the body's end)
                c.conn.consume(step.consumed)
                return false
            }
        }
    }

    // MARK: - Timeouts (main thread)

    /// Header and body timeouts (408) and idle keep-alive connections (closed quietly).
    /// A connection whose bytes wait unread in its socket is not slow: we are. Its event
    /// is queued in epoll for the next free thread, so it keeps its place. (This must not
    /// depend on whether every thread is busy at the instant of the sweep: a thread
    /// between two requests made that test pass, and a request queued behind a full CGI
    /// gate longer than the header timeout was closed unanswered.) A slow client gains
    /// nothing by it: a free thread reads its byte at once, and the next sweep finds the
    /// socket empty.
    func sweepTimeouts(_ now: Double) {
        let expired = state.withLock { () -> [Connection] in
            let gone = waiting.values.filter { c in
                guard c.intake.expired(at: now) else { return false }
                return (try? c.conn.fd.waitReadable(timeoutMilliseconds: 0)) != true
            }
            for c in gone { waiting[c.conn.fd.rawValue] = nil }
            return gone
        }
        for c in expired {
            if c.intake.expiry == .respond408 {
                try? c.conn.write(ResponseHead.error(408, keepAlive: false, date: ctx.httpDate()), timeout: 1)
            }
            close(c)
        }
    }

    /// While draining: a connection with no request in progress ends at its keep-alive
    /// deadline, or sooner (WorkerContext.idleDeadline); the sweep closes it.
    func shortenIdleDeadlines() {
        state.withLock {
            for c in waiting.values { c.intake.capIdleDeadline(ctx.idleDeadline) }
        }
    }
}
