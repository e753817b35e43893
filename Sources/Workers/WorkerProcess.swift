import GatewayConfig
import GatewayLogging
import GatewaySystem
import Logging
import Synchronization
import Observability

/// The parts of a worker process every class shares: the inherited fds, the heartbeat,
/// signals (TERM: finish and stop; INT/QUIT: stop now; USR1: reopen logs; USR2: give
/// back kept app connections that another worker waits for) and the
/// parent check, so workers never outlive the master.
public final class WorkerProcess {
    public let listeners: [FileDescriptor]
    public let heartbeat: FileDescriptor
    public let signalPipe: FileDescriptor
    let masterPID: Int32
    /// When the heartbeat was last touched (a Double's bits): the thread worker's pool
    /// threads all beat, so it is an atomic. The other mutable field, `listenersClosed`,
    /// is used by the thread that handles signals only.
    private let lastBeat = Atomic<UInt64>(0)
    private var listenersClosed = false

    /// `masterPID`: the pid of the master that spawned us. If it is no longer our parent
    /// once the death signal is armed, the master died while we booted: exit at once.
    public init(listeners: [FileDescriptor], heartbeat: FileDescriptor, masterPID: Int32) throws {
        self.listeners = listeners
        self.heartbeat = heartbeat
        self.masterPID = masterPID
        Signals.onParentDeath(Signals.term)
        if Processes.parentPID != masterPID { Processes.exit(0) }
        Signals.ignore(13)  // SIGPIPE: a client that goes away is an error return, not a death
        signalPipe = try Signals.pipe(for: [Signals.term, Signals.int, Signals.quit, Signals.usr1, Signals.usr2, Signals.hup])
    }

    /// The request count after which this worker retires: max_requests plus a random
    /// share of max_requests_jitter, so workers do not all restart at once.
    public func requestLimit(_ s: ServerConfig) -> Int {
        guard s.maxRequests > 0 else { return 0 }
        return s.maxRequests + (s.maxRequestsJitter > 0 ? Int.random(in: 0...s.maxRequestsJitter) : 0)
    }

    /// A draining worker takes the connections already queued in the listeners'
    /// backlogs (each with the index of its listener), then closes its copies. On a
    /// reload the master and the new workers keep theirs, so nothing is lost either way;
    /// on a stop the master has closed its own, and the last worker to close leaves no
    /// backlog behind: a client that connected before gets an answer (with Connection:
    /// close), one that connects after is refused at once, never reset or left waiting.
    public func takeBacklogAndCloseListeners() -> [(fd: FileDescriptor, listener: Int)] {
        guard !listenersClosed else { return [] }
        listenersClosed = true
        var taken: [(fd: FileDescriptor, listener: Int)] = []
        for (i, l) in listeners.enumerated() {
            while let fd = (try? Socket.accept(l, nonBlocking: true)) ?? nil { taken.append((fd, i)) }
            try? l.close()
        }
        return taken
    }

    /// Proves the worker is alive (at most every 0.5 s).
    public func beat() {
        let now = Host.monotonicSeconds()
        let last = lastBeat.load(ordering: .relaxed)
        guard now - Double(bitPattern: last) >= 0.5,
              lastBeat.compareExchange(expected: last, desired: now.bitPattern, ordering: .relaxed).exchanged else { return }
        heartbeat.touch()
        // Checked with the heartbeat, not on every call (a getppid per wait was three
        // system calls per request): PDEATHSIG normally ends us first anyway.
        if Processes.parentPID != masterPID {
            // The master is gone.
            Processes.exit(0)
        }
    }

    /// Called while waiting inside a request: heartbeat, and act on INT/QUIT at once.
    public func beatAndCheck(_ ctx: WorkerContext) {
        beat()
        handleSignals(ctx)
    }

    public func handleSignals(_ ctx: WorkerContext) {
        for sig in Signals.drain(signalPipe) {
            switch sig {
            case Signals.term:
                if !ctx.draining { ctx.logger.info("TERM: finishing the requests in hand, then exiting") }
                ctx.draining = true
            case Signals.int, Signals.quit:
                ctx.logger.info("\(Signals.name(sig)): exiting now")
                Processes.exit(0)
            case Signals.usr1:
                ctx.errorSink.reopen()
                ctx.accessLog?.reopen()
            case Signals.usr2:
                // Another worker waits for a slot this worker keeps an idle connection to.
                ctx.dispatcher.answerReclaims()
            default:
                break  // HUP is the master's business
            }
        }
    }
}
