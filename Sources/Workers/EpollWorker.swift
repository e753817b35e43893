import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import AppPool
import Exchanges

/// `worker_class = "epoll"`: one thread, one epoll instance, every socket non-blocking.
/// Clients and app connections are registered once, edge-triggered, and the loop
/// remembers their readiness (a short read or write clears it), as nginx does. Listeners
/// are shared with the other workers through EPOLLEXCLUSIVE, so a new connection wakes
/// one worker. A request is read whole (head, then body in memory or a temporary file),
/// then takes an app slot (a grant from the queue arrives as SIGUSR2 through the signal
/// pipe), then its response streams to the client with back-pressure both ways: the
/// worker stops reading the app while the client has `ClientOutput.highWater` bytes unsent.
///
/// Calls that can still block the loop: writes and reads of the temporary file of a
/// large request body (a local disk), the access and error log writes, and the
/// process-shared slot-table mutex (held for a few hundred nanoseconds by whoever has it).
public final class EpollWorker {
    static let backendTag: UInt64 = 1 << 63
    static let listenerTag: UInt64 = 1 << 62
    static let signalTag: UInt64 = 1 << 61
    static let cgiTag: UInt64 = 1 << 60
    /// Epoll data and timers carry (serial << 32 | fd); the serial stays below the tag bits.
    static let serialMask: UInt32 = 0x0fff_ffff
    static let clientEvents: Epoll.Events = [.readable, .writable, .peerClosed, .edgeTriggered]
    /// Static file bytes sent to one client per loop turn, so a fast reader of a big file
    /// does not hold the loop; the rest goes on the next turn.
    static let fileBytesPerTurn = 1 << 20
    /// How long a closing connection may keep sending before we close anyway.
    static let lingerSeconds = 2.0
    /// Pipelined requests served in a row before the connection waits for the next turn.
    static let requestsPerTurn = 16

    let ctx: WorkerContext
    let process: WorkerProcess
    let epoll: Epoll
    let events = Epoll.EventBuffer(capacity: 256)
    var scratch = [UInt8].readBuffer(65536)

    /// Open clients, by fd.
    var clients: [EpollClient?] = []
    /// App connections, by fd.
    var backends: [Backend] = []
    struct Backend {
        /// The client whose request uses the connection (nil: parked between requests).
        var owner: EpollClient? = nil
        /// A parked connection stays registered; an event that comes meanwhile (the app
        /// closed it) is noted here for the request that reuses it.
        var stirred = false
        /// Bumped for every connection registered under this fd number.
        var generation: UInt32 = 0
    }
    var openClients = 0
    var nextSerial: UInt32 = 0
    var lastSweep = 0.0
    static let sweepSeconds = 0.1
    /// Requests whose app socket had a full backlog: connect again on the next turn.
    var connectRetries: [EpollClient] = []
    /// Requests waiting for a slot, per app, oldest first.
    var queued: [[(ticket: Int64, client: EpollClient)]]
    /// A slot may have been granted to one of our waiters (we released one, or a signal came).
    var grantsMayWait = false
    /// Slots a release handed straight to one of our queued requests (app, ticket, lease).
    var handedOff: [(app: Int, ticket: Int64, lease: AppDispatcher.Lease)] = []
    /// Connections whose next pipelined request is ready; served after the current events
    /// (serving them inline could recurse once per pipelined request).
    var runnable: [EpollClient] = []
    /// Connections still writable after their share of a static file this turn.
    var flushReady: [EpollClient] = []
    /// HTTP/2 connections with frames to write at the end of this turn.
    var h2Ready: [EpollClient] = []
    var listening = false
    /// CGI programs: each registered pipe or pidfd, with its registration generation.
    var cgiRuns: [Int32: (link: CGILink, client: EpollClient, generation: UInt32)] = [:]
    var nextCGIGeneration: UInt32 = 0
    /// Requests waiting for a CGI place, oldest first.
    var cgiQueue: [EpollClient] = []
    /// Programs whose client left (or that failed), between SIGTERM and their reaping.
    var cgiDying: [CGILink] = []
    var lastTick = 0.0
    var lastChores = 0.0

    public init(context: WorkerContext, process: WorkerProcess) throws {
        ctx = context
        self.process = process
        epoll = try Epoll()
        queued = Array(repeating: [], count: context.config.apps.count)
        context.onWait = { [process] in process.beat() }
    }

    var timeouts: TimeoutsConfig { ctx.config.timeouts }

    /// Runs until told to stop, the master dies, or max_requests is reached. Returns the exit code.
    public func run() -> Int32 {
        do {
            for l in process.listeners { try l.setNonBlocking(true) }
            try epoll.add(process.signalPipe, [.readable], data: Self.signalTag)
        } catch {
            ctx.logger.critical("cannot start the epoll worker: \(error)")
            return 1
        }
        setListening(true)
        ctx.onDrain = { [self] in
            setListening(false)
            for (fd, i) in process.takeBacklogAndCloseListeners() { adopt(fd, listener: i) }
        }
        ctx.logger.info("epoll worker ready", metadata: ["listeners": "\(process.listeners.count)",
                                                        "worker_connections": "\(ctx.config.server.workerConnections)"])
        while true {
            var wait = Self.sweepSeconds * 1000
            if !connectRetries.isEmpty { wait = AppLink.connectRetrySeconds * 1000 }
            if !runnable.isEmpty || !flushReady.isEmpty { wait = 0 }
            _ = try? epoll.wait(buffer: events, timeoutMilliseconds: Int32(wait.rounded(.up))) { events, data in
                handle(events, data)
            }
            runReady()
            flushFiles()
            flushHTTP2()
            startHandedOff()
            if grantsMayWait { collectGrants(periodic: false) }
            let after = Host.monotonicSeconds()
            if !connectRetries.isEmpty { retryConnects() }
            if after - lastSweep >= Self.sweepSeconds { sweepTimeouts(after) }
            if after - lastTick >= 0.2 {  // heartbeat, and a queued request's chores (as a blocking waiter's)
                lastTick = after
                process.beat()
                if queued.contains(where: { !$0.isEmpty }) { collectGrants(periodic: true) }
            }
            if ctx.draining {
                setListening(false)
                shortenIdleDeadlines()
                goAwayHTTP2()
                if openClients == 0 {
                    endAllCGI()
                    return 0
                }
            } else {
                setListening(openClients < ctx.config.server.workerConnections)
            }
        }
    }

    func handle(_ events: Epoll.Events, _ data: UInt64) {
        if data & Self.backendTag != 0 {
            let fd = Int(data & 0xffff_ffff)
            // An event of an earlier connection with this fd number (closed within this
            // batch) is ignored: each registration carries its own generation.
            guard fd < backends.count, backends[fd].generation == UInt32(truncatingIfNeeded: data >> 32) & Self.serialMask else { return }
            guard let c = backends[fd].owner else {
                backends[fd].stirred = true  // a parked connection: the app closed it?
                return
            }
            backendEvent(c, events)
        } else if data & Self.listenerTag != 0 {
            acceptAll(process.listeners[Int(data & 0xffff)], index: Int(data & 0xffff))
        } else if data & Self.cgiTag != 0 {
            cgiEvent(data)
        } else if data & Self.signalTag != 0 {
            process.handleSignals(ctx)  // TERM sets draining; USR2 answers reclaims
            grantsMayWait = true  // USR2 also says "a slot was granted to you"
        } else {
            let fd = Int(data & 0xffff_ffff)
            guard fd < clients.count, let c = clients[fd], c.serial == UInt32(truncatingIfNeeded: data >> 32) else { return }
            clientEvent(c, events)
        }
    }

    func setListening(_ on: Bool) {
        guard on != listening else { return }
        listening = on
        for (i, l) in process.listeners.enumerated() {
            if on { try? epoll.add(l, [.readable, .exclusive], data: Self.listenerTag | UInt64(i)) } else { try? epoll.remove(l) }
        }
    }

    // MARK: - Clients

    func acceptAll(_ listener: FileDescriptor, index: Int) {
        let cap = ctx.config.server.workerConnections
        while !ctx.draining && openClients < cap {
            guard let fd = (try? Socket.accept(listener, nonBlocking: true)) ?? nil else { return }
            adopt(fd, listener: index)
        }
    }

    /// A new client connection (non-blocking), waiting for its first request.
    func adopt(_ fd: FileDescriptor, listener: Int) {
        Socket.setNoDelay(fd)
        nextSerial = (nextSerial + 1) & Self.serialMask
        let c = EpollClient(fd: fd, serial: nextSerial, session: ctx.newSession(listener: listener), tls: ctx.newTLS(listener: listener))
        let index = Int(fd.rawValue)
        if index >= clients.count { clients += Array(repeating: nil, count: max(index + 1 - clients.count, clients.count)) }
        clients[index] = c
        openClients += 1
        ctx.connectionsChanged(by: 1)
        do { try epoll.add(fd, Self.clientEvents, data: UInt64(c.serial) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))) } catch { return closeClient(c) }
        c.deadline = c.session.deadline
    }

    func clientEvent(_ c: EpollClient, _ events: Epoll.Events) {
        if !events.isDisjoint(with: [.readable, .peerClosed, .hangup, .error]) { c.readable = true }
        if !events.isDisjoint(with: [.writable, .hangup, .error]) { c.writable = true }
        if c.phase == .queued || c.phase == .upstream {
            // Reset or gone both ways: nobody is left to answer. A client that closed its
            // side while its request waits for a slot gives up its place (nothing has
            // reached the app; once the app has it, it runs to the end); a CGI program is
            // ended when its client leaves (its output would go nowhere).
            let halfClosedGone = events.contains(.peerClosed) && (c.phase == .queued || c.request?.cgiLink != nil)
            if halfClosedGone || !events.isDisjoint(with: [.hangup, .error]) { return clientGone(c) }
        }
        if c.phase == .http2 { return h2Event(c) }
        if c.writable && c.outputPending > 0 { flushClient(c) }
        guard !c.closed && c.readable else { return }
        if c.phase == .lingering { return drainLingering(c) }
        if c.phase == .session && c.session.wantsInput { drive(c) }
    }

    /// Carries out the session's steps until one has to wait: for client bytes, for the
    /// client to take output, or for an exchange (which calls `drive` again at its end).
    /// A call while `drive` is on the stack returns at once: the loop below goes on, so
    /// a pipelined run of requests answered at once does not recurse.
    func drive(_ c: EpollClient) {
        guard !c.driving else { return }
        c.driving = true
        defer { c.driving = false }
        var served = 0
        while !c.closed && c.phase == .session {
            let (step, now) = ctx.nextStep(c) { head, now in
                let r = EpollRequest(head: head, id: ctx.nextRequestID(), started: now, keepAlive: ctx.offersKeepAlive(to: head), worker: self, client: c)
                if c.stream != nil { r.logVersion = "HTTP/2.0" }
                return r
            }
            switch step {
            case .read:
                c.deadline = c.session.deadline
                guard readClient(c) else { return }
            case .exchange:
                guard let r = c.request else { return closeClient(c) }
                startExchange(c, r)
            case .send(let bytes):
                c.out.queue(bytes[...])
                flushClient(c)
            case .flush:
                guard writeOutput(c) else {
                    c.session.clientGone(unsent: c.outputPending)
                    continue
                }
                guard c.outputPending == 0 else {
                    c.deadline = now + timeouts.send
                    return
                }
                c.session.flushed()
            case .finished:
                served += 1
                // A client with more pipelined requests waits for the next turn.
                if served >= Self.requestsPerTurn && !c.session.unconsumed.isEmpty {
                    runnable.append(c)
                    return
                }
            case .close(let linger):
                return linger ? startLingering(c) : closeClient(c)
            default:
                break  // carried out by nextStep
            }
        }
    }

    /// One read for the session; false when there is nothing to read now.
    func readClient(_ c: EpollClient) -> Bool {
        guard c.readable, c.stream == nil else { return false }  // a stream's input is pushed by its connection
        let n: Int?
        do { n = try c.fd.read(into: &scratch, from: 0) } catch {
            c.session.clientClosed()  // a reset
            return true
        }
        guard let n else {
            c.readable = false
            return false
        }
        if n < scratch.count { c.readable = false }
        if n == 0 {
            c.session.clientClosed()
        } else if let tls = c.tls {
            receiveTLS(c, tls, n)
        } else {
            c.session.received(scratch[0..<n])
            if ctx.config.server.h2c && ctx.config.server.http2 && beginsHTTP2(c) { startHTTP2(c) }
        }
        return true
    }

    /// Ciphertext in: its plaintext to the session, and what TLS has to say back (the
    /// handshake) on its way at once.
    func receiveTLS(_ c: EpollClient, _ tls: ClientTLS, _ n: Int) {
        var open = tls.receive(scratch[0..<n], session: &c.session, out: &c.out)
        if c.outputPending > 0 && !writeOutput(c) { open = false }
        if !open { return c.session.clientClosed() }
        // (ALPN is chosen with the server's first flight; the frames wait for the end of
        // the handshake.)
        if tls.connection.handshakeDone && tls.connection.alpn == "h2" { startHTTP2(c) }
    }
}
