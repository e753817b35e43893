import GatewaySystem
import HTTPWire
import Logging

/// `worker_class = "thread"`: the Waitress model. One loop thread owns every client
/// connection while it is between requests: it accepts, reads without blocking until a
/// request head (and a small Content-Length body) is complete, and enforces the header
/// and keep-alive timeouts. Only complete requests go to the pool of `threads` threads,
/// which run the shared pipeline and hand keep-alive connections back to the loop. So a
/// slow or idle client never holds a pool thread (gunicorn's gthread gives a thread the
/// connection before the request is read, and its pool runs dry under slowloris).
public final class ThreadWorker: @unchecked Sendable {
    /// A client connection, watched by the loop until its next request is ready.
    final class Connection: @unchecked Sendable {
        let conn: ClientConnection
        var parser: HTTPRequestParser
        /// The request whose small body the loop is still buffering.
        var head: HTTPRequestHead? = nil
        var deadline: Double
        var sawByte = false
        var started: Double

        init(conn: ClientConnection, parser: HTTPRequestParser, deadline: Double, now: Double) {
            self.conn = conn
            self.parser = parser
            self.deadline = deadline
            self.started = now
        }
    }

    /// A body up to this size is read by the loop before the request goes to a thread.
    static let bufferedBodyLimit: UInt64 = 65536

    let ctx: WorkerContext
    let process: WorkerProcess
    let pipeline: BlockingPipeline
    let epoll: Epoll
    let wakeRead: FileDescriptor
    let wakeWrite: FileDescriptor

    /// Loop thread only: connections between requests, by fd.
    var waiting: [Int32: Connection] = [:]
    var listening = false

    /// Shared with the pool, under `queue`'s lock.
    let queue = Condition()
    var jobs: [(Connection, HTTPRequestHead)] = []
    var jobsHead = 0
    var returned: [Connection] = []
    var withPool = 0
    var poolStopping = false

    static let wakeTag: UInt64 = 1 << 40
    static let signalTag: UInt64 = 2 << 40
    static let listenerTag: UInt64 = 3 << 40

    public init(context: WorkerContext, process: WorkerProcess) throws {
        ctx = context
        self.process = process
        pipeline = BlockingPipeline(context: context)
        epoll = try Epoll()
        (wakeRead, wakeWrite) = try Pipe.make(nonBlocking: true)
        // Pool threads only keep the heartbeat fresh; the loop thread handles signals.
        context.onWait = { [process] in process.beat() }
    }

    /// Runs until told to stop, the master dies, or max_requests is reached. Returns the exit code.
    public func run() -> Int32 {
        let server = ctx.config.server
        do {
            try epoll.add(wakeRead, .readable, data: Self.wakeTag)
            try epoll.add(process.signalPipe, .readable, data: Self.signalTag)
            for l in process.listeners { try l.setNonBlocking(true) }
            setListening(true)
            for _ in 0..<server.threads { try Threads.start { [self] in poolThread() } }
        } catch {
            ctx.logger.critical("cannot start the thread worker: \(error)")
            return 1
        }
        ctx.logger.info("thread worker ready", metadata: ["threads": "\(server.threads)", "listeners": "\(process.listeners.count)"])
        let limit = process.requestLimit(server)
        let events = Epoll.EventBuffer(capacity: 256)
        var lastSweep = 0.0
        while true {
            process.beat()
            if limit > 0 && ctx.requestsServed >= limit && !ctx.draining {
                ctx.logger.info("max_requests (\(limit)) reached; finishing, then exiting so the master starts a fresh worker")
                ctx.draining = true
            }
            if ctx.draining {
                setListening(false)
                closeIdleConnections()
                if waiting.isEmpty && queue.withLock({ withPool == 0 }) { break }
            } else {
                setListening(waiting.count + queue.withLock { withPool } < server.workerConnections)
            }
            _ = try? epoll.wait(buffer: events, timeoutMilliseconds: 100) { ev, data in
                switch data {
                case Self.wakeTag: takeReturned()
                case Self.signalTag: process.handleSignals(ctx)
                case Self.listenerTag...(Self.listenerTag + 1000): acceptAll(process.listeners[Int(data - Self.listenerTag)])
                default: readable(Int32(truncatingIfNeeded: data), hangup: !ev.isDisjoint(with: [.error, .hangup]))
                }
            }
            let now = Host.monotonicSeconds()
            if now - lastSweep >= 0.1 {
                lastSweep = now
                sweepTimeouts(now)
            }
        }
        queue.withLock {
            poolStopping = true
            queue.broadcast()
        }
        return 0
    }

    // MARK: - The loop

    func setListening(_ on: Bool) {
        guard on != listening else { return }
        listening = on
        for (i, l) in process.listeners.enumerated() {
            if on { try? epoll.add(l, [.readable, .exclusive], data: Self.listenerTag + UInt64(i)) } else { try? epoll.remove(l) }
        }
    }

    func acceptAll(_ listener: FileDescriptor) {
        let cap = ctx.config.server.workerConnections
        while !ctx.draining && waiting.count + queue.withLock({ withPool }) < cap {
            guard let fd = (try? Socket.accept(listener, nonBlocking: true)) ?? nil else { return }
            Socket.setNoDelay(fd)
            let now = Host.monotonicSeconds()
            let c = Connection(conn: ClientConnection(fd: fd, heartbeat: { [process] in process.beat() }),
                               parser: HTTPRequestParser(limits: ctx.limits), deadline: now + ctx.config.timeouts.header, now: now)
            ctx.connectionsChanged(by: 1)
            watch(c)
        }
    }

    func watch(_ c: Connection) {
        do {
            try c.conn.fd.setNonBlocking(true)
            try epoll.add(c.conn.fd, [.readable, .peerClosed], data: UInt64(UInt32(bitPattern: c.conn.fd.rawValue)))
            waiting[c.conn.fd.rawValue] = c
        } catch {
            close(c)
        }
    }

    func unwatch(_ c: Connection) {
        try? epoll.remove(c.conn.fd)
        waiting[c.conn.fd.rawValue] = nil
    }

    func close(_ c: Connection) {
        c.conn.close()
        ctx.connectionsChanged(by: -1)
    }

    func readable(_ fd: Int32, hangup: Bool) {
        guard let c = waiting[fd] else { return }
        do {
            guard let more = try c.conn.readAvailable() else { return }
            guard more else {
                unwatch(c)
                close(c)
                return
            }
        } catch {
            unwatch(c)
            close(c)
            return
        }
        advance(c)
    }

    /// Parses what the connection has; hands a ready request to the pool.
    func advance(_ c: Connection) {
        let now = Host.monotonicSeconds()
        if c.head == nil {
            do {
                while true {
                    let step = try c.parser.parse(c.conn.unconsumed)
                    c.conn.consume(step.consumed)
                    if case .head(let h)? = step.event {
                        c.head = h
                        break
                    }
                    if step.event != nil || step.consumed > 0 { continue }
                    break
                }
            } catch {
                unwatch(c)
                try? c.conn.fd.setNonBlocking(false)
                pipeline.answerBadRequest(c.conn, error, started: c.started)
                close(c)
                return
            }
            if !c.sawByte && (c.head != nil || !c.conn.unconsumed.isEmpty) {
                c.sawByte = true
                c.started = now
                c.deadline = now + ctx.config.timeouts.header
            }
        }
        guard let head = c.head else { return }
        // A small body is read here too, so a slow upload of it holds no thread. Not
        // with Expect: 100-continue: that client waits for our answer first.
        if case .contentLength(let n) = head.framing, n <= Self.bufferedBodyLimit, !head.expectContinue,
           UInt64(c.conn.unconsumed.count) < n {
            c.deadline = now + ctx.config.timeouts.body
            return
        }
        unwatch(c)
        c.head = nil
        do { try c.conn.fd.setNonBlocking(false) } catch {
            close(c)
            return
        }
        queue.withLock {
            jobs.append((c, head))
            withPool += 1
            queue.signal()
        }
    }

    /// Connections the pool finished with: back to waiting for their next request.
    func takeReturned() {
        _ = Signals.drain(wakeRead)
        let back = queue.withLock {
            let r = returned
            returned = []
            return r
        }
        let now = Host.monotonicSeconds()
        for c in back {
            c.sawByte = !c.conn.unconsumed.isEmpty
            c.started = now
            c.deadline = now + (c.sawByte ? ctx.config.timeouts.header : ctx.config.server.keepalive)
            watch(c)
            if c.sawByte { advance(c) }  // a pipelined request is already here
        }
    }

    /// Header and body timeouts (408) and idle keep-alive connections (closed quietly).
    func sweepTimeouts(_ now: Double) {
        for c in waiting.values where c.deadline <= now {
            unwatch(c)
            if c.sawByte {
                try? c.conn.fd.setNonBlocking(false)
                try? c.conn.write(ResponseHead.error(408, keepAlive: false, date: ctx.httpDate()), timeout: 1)
            }
            close(c)
        }
    }

    /// While draining: connections with no request in progress are closed.
    func closeIdleConnections() {
        for c in waiting.values where !c.sawByte {
            unwatch(c)
            close(c)
        }
    }

    // MARK: - The pool

    func poolThread() {
        while true {
            queue.lock()
            while jobsHead == jobs.count && !poolStopping { queue.wait() }
            if jobsHead == jobs.count {
                queue.unlock()
                return
            }
            let (c, head) = jobs[jobsHead]
            jobsHead += 1
            if jobsHead > 1024 && jobsHead * 2 > jobs.count {
                jobs.removeFirst(jobsHead)
                jobsHead = 0
            }
            queue.unlock()

            let keep = pipeline.handle(head, c.conn, &c.parser)
            ctx.requestFinished()
            if keep && !ctx.draining {
                queue.withLock {
                    returned.append(c)
                    withPool -= 1
                }
            } else {
                close(c)
                queue.withLock { withPool -= 1 }
            }
            _ = try? wakeWrite.write([1], from: 0)
        }
    }
}
