import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// `worker_class = "thread"`: slow clients never hold a thread (the Waitress property),
/// without a hand-off per request. The `threads` threads share one epoll instance; each
/// takes one event at a time. A client connection between requests is armed one-shot:
/// the thread that gets its event reads what has arrived without blocking, and only when
/// the request's head and whole body are in does that same thread serve it with the
/// shared pipeline; otherwise it re-arms the connection and takes the next event. The main thread handles signals and the header, body and
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
    static let listenerTag: UInt64 = 1 << 40
    static let armed: Epoll.Events = [.readable, .peerClosed, .oneShot]

    let ctx: WorkerContext
    let process: WorkerProcess
    let pipeline: BlockingPipeline
    let epoll: Epoll

    /// Guards everything below.
    let state = Condition()
    /// Connections waiting for input (armed in epoll), by fd. Not Sendable and needs no
    /// lock of its own: one thread at a time owns a connection, the one that took it out
    /// of `waiting` under `state`; the main thread's sweep touches it only while it is
    /// in `waiting`, under `state`.
    var waiting: [Int32: ClientConnection] = [:]
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
        var buffer = [UInt8].readBuffer(65536)  // lent to the connection this thread serves
        while !state.withLock({ stopping }) {
            _ = try? epoll.wait(buffer: events, timeoutMilliseconds: 100) { _, data in
                if data >= Self.listenerTag {
                    acceptAll(process.listeners[Int(data - Self.listenerTag)], index: Int(data - Self.listenerTag))
                } else {
                    readable(Int32(truncatingIfNeeded: data), buffer: &buffer)
                }
            }
        }
    }

    /// Takes the connections waiting on a listener. Each accept counts as an active
    /// connection until the new one is in `waiting`: a drain that begins meanwhile must
    /// not find the worker empty and exit with a connection in this thread's hands (its
    /// client's request would meet a reset).
    func acceptAll(_ listener: FileDescriptor, index: Int) {
        let cap = ctx.config.server.workerConnections
        while state.withLock({ () -> Bool in
            guard !ctx.draining && waiting.count + active < cap else { return false }
            active += 1
            return true
        }) {
            defer { state.withLock { active -= 1 } }
            guard let fd = (try? Socket.accept(listener, nonBlocking: true)) ?? nil else { return }
            adopt(fd, listener: index)
        }
    }

    /// A new client connection (non-blocking), waiting for its first request.
    func adopt(_ fd: FileDescriptor, listener index: Int) {
        Socket.setNoDelay(fd)
        let c = ClientConnection(fd: fd, session: ctx.newSession(listener: index), tls: ctx.newTLS(listener: index), heartbeat: { [process] in process.beat() })
        ctx.connectionsChanged(by: 1)
        state.withLock { waiting[fd.rawValue] = c }  // before it can report an event
        do { try epoll.add(fd, Self.armed, data: UInt64(UInt32(bitPattern: fd.rawValue))) } catch {
            state.withLock { waiting[fd.rawValue] = nil }
            close(c)
        }
    }

    /// Waits for the next event of a connection this thread is done with for now.
    func rearm(_ c: ClientConnection) {
        state.withLock {
            waiting[c.fd.rawValue] = c
            active -= 1
        }
        do { try epoll.modify(c.fd, Self.armed, data: UInt64(UInt32(bitPattern: c.fd.rawValue))) } catch {
            if state.withLock({ waiting.removeValue(forKey: c.fd.rawValue) }) != nil { close(c) }
        }
    }

    func close(_ c: ClientConnection) {
        c.close()
        ctx.connectionsChanged(by: -1)
    }

    func finish(_ c: ClientConnection) {
        state.withLock { active -= 1 }
        close(c)
    }

    /// Input came: the session's steps run on this thread, a request's exchange with them,
    /// until it needs input that has not arrived (re-armed) or the connection is over.
    /// Only a request whose head and body are whole holds the thread: the session reads
    /// the body (memory, then a temporary file) before the exchange.
    func readable(_ fd: Int32, buffer: inout [UInt8]) {
        // Taken out of `waiting`: the timeout sweep leaves it alone while we have it.
        guard let c = state.withLock({ () -> ClientConnection? in
            guard let c = waiting.removeValue(forKey: fd) else { return nil }
            active += 1
            return c
        }) else { return }
        c.drained = false  // the event says there is input
        swap(&c.scratch, &buffer)
        let pause = pipeline.drive(c, waitForInput: false)
        swap(&c.scratch, &buffer)
        switch pause {
        case .needsInput: rearm(c)
        case .closed: finish(c)
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
        let expired = state.withLock { () -> [ClientConnection] in
            let gone = waiting.values.filter { c in
                guard c.session.deadline <= now else { return false }
                return (try? c.fd.waitReadable(timeoutMilliseconds: 0)) != true
            }
            for c in gone { waiting[c.fd.rawValue] = nil }
            return gone
        }
        for c in expired {
            // The 408 (if a request had begun) fits the empty socket buffer: no wait here.
            c.session.timedOut(ctx, now: now)
            _ = pipeline.drive(c, waitForInput: false)
            c.lingerOnClose = false  // not on the main thread: a slow client gets no more time
            close(c)
        }
    }

    /// While draining: a connection with no request in progress ends at its keep-alive
    /// deadline, or sooner (WorkerContext.idleDeadline); the sweep closes it.
    func shortenIdleDeadlines() {
        state.withLock {
            for c in waiting.values { c.session.capIdle(ctx.idleDeadline) }
        }
    }
}
