import GatewayConfig
import GatewayLogging
import GatewaySystem
import HTTPWire
import Logging
import Observability
import Synchronization
import AppPool
import Exchanges
import TLS

/// What every request in a worker process shares: configuration, router, logs, the
/// Date header of the current second, counters, and the drain flag.
public final class WorkerContext {
    public let config: Configuration
    public let router: Router
    public let limits: HTTPLimits
    /// The request intake's deadlines, from [timeouts] and server.keepalive.
    let intakeTimeouts: RequestIntake.Timeouts
    public var logger: Logger
    public let errorSink: LogSink
    public let accessLog: AccessLog?
    public static let software = ServerIdentity.software

    /// Set by TERM, and when max_requests is reached: stop accepting, finish what is
    /// held, then exit. See `mayKeepAlive` and `idleDeadline` for how kept connections end.
    /// An atomic: the thread worker's pool threads read it while its main thread sets it.
    /// A drain is never undone; setting false does nothing.
    public var draining: Bool {
        get { drainFlag.load(ordering: .acquiring) }
        set {
            guard newValue else { return }
            drainFlag.store(true, ordering: .releasing)
            // The thread worker's pool threads (max_requests) and its main thread (TERM)
            // may both get here: the first one runs onDrain.
            let first = counters.withLock { () -> Bool in
                guard drainStart == nil else { return false }
                drainStart = Host.monotonicSeconds()
                return true
            }
            if first { onDrain() }
        }
    }
    private let drainFlag = Atomic<Bool>(false)
    /// Guarded by `counters`.
    private var drainStart: Double? = nil
    public var drainStartedAt: Double? { counters.withLock { drainStart } }
    /// Runs once when draining starts: the worker class takes the listeners' backlog and
    /// closes its copies (WorkerProcess.takeBacklogAndCloseListeners).
    public var onDrain: () -> Void = {}
    /// max_requests plus this worker's jitter (0: no limit); set by the worker's loop.
    public var requestLimit = 0
    public private(set) var requestsServed = 0
    var requestCounter: UInt64 = 0
    /// "<pid in hex>-": made once (getpid is a system call).
    let requestIDPrefix = String(Processes.currentPID, radix: 16) + "-"
    var dateSecond: Int64 = -1
    var dateValue = ""
    /// Slots and queues of the apps, shared with the master and the other workers.
    public let dispatcher: AppDispatcher
    /// This worker's row in the shared worker list (-1: none).
    public let workerRecord: Int
    /// CGI programs by request path, and the places this worker may run them in.
    let cgiScripts: CGIScripts
    let cgiGate: CGIGate
    /// By route index, resolved at boot: the route's directory, and its app with the
    /// app's index in the slot table.
    let routeTrees: [DocumentTree?]
    let routeApps: [(app: AppConfig, index: Int)?]
    /// The directories X-Sendfile may name files under: by app index, then one more entry
    /// for CGI programs ([cgi] sendfile_roots).
    let sendfileTrees: [[DocumentTree]]
    /// Metric entries in the shared region, by route label (found once per label).
    var metricEntries: [String: Int] = [:]
    /// Open client connections, for the status page.
    public private(set) var openConnections = 0
    /// Guards the counters and the Date cache: the thread worker's pool shares them.
    let counters = Condition()
    /// What the status page and /metrics read.
    var view: ServerView { ServerView(config: config, table: dispatcher.table) }
    /// Each app's settings for the FastCGI engine, and its env sorted once, by app index.
    let appExchanges: [AppExchange.App]
    /// By route index: the route's env, then its app's, each sorted, made once at boot
    /// (the order CGIEnvironment.build takes them in, as before).
    let extraEnvironments: [[(String, String)]]
    /// Called while waiting (each second at most): heartbeat and signal checks.
    public var onWait: () -> Void = {}
    /// By listener (server.bind order): its TLS certificates, or nil for plain HTTP.
    let tlsContexts: [TLSContext?]
    /// The ticket keys' sequence number last given to the contexts (the master rotates them).
    let ticketSequence = Atomic<UInt64>(0)

    public init(config: Configuration, logger: Logger, errorSink: LogSink, accessLog: AccessLog?,
                dispatcher: AppDispatcher, workerRecord: Int = -1, tls: [TLSContext?] = []) {
        self.config = config
        tlsContexts = tls
        self.dispatcher = dispatcher
        self.workerRecord = workerRecord
        self.router = Router(routes: config.routes)
        intakeTimeouts = RequestIntake.Timeouts(header: config.timeouts.header, keepalive: config.server.keepalive,
                                                body: config.timeouts.body, bodyTotal: config.timeouts.bodyTotal)
        appExchanges = Self.appExchanges(config)
        cgiScripts = CGIScripts(config: config, searchPath: Host.environmentValue("PATH") ?? "/usr/local/bin:/usr/bin:/bin")
        cgiGate = CGIGate(places: config.cgi.maxProcesses)
        var trees: [String: DocumentTree] = [:]
        for r in config.routes {
            guard let root = Self.documentRoot(of: r, config) else { continue }
            trees[Self.treeKey(root, r.allowSymlinks)] = DocumentTree(root: root, allowSymlinks: r.allowSymlinks,
                                                                      cache: (config.server.openFileCache, config.server.openFileCacheValid))
        }
        routeTrees = config.routes.map { r in Self.documentRoot(of: r, config).flatMap { trees[Self.treeKey($0, r.allowSymlinks)] } }
        let cache = (config.server.openFileCache, config.server.openFileCacheValid)
        sendfileTrees = (config.apps.map(\.sendfileRoots) + [config.cgi.sendfileRoots]).map { roots in
            roots.map { trees[Self.treeKey($0, false)] ?? DocumentTree(root: $0, allowSymlinks: false, cache: cache) }
        }
        routeApps = config.routes.map { r in
            guard case .app(let name) = r.target, let i = config.apps.firstIndex(where: { $0.name == name }) else { return nil }
            return (config.apps[i], i)
        }
        let sortedEnv = { (env: [String: String]) in env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
        extraEnvironments = zip(config.routes, routeApps).map { route, app in sortedEnv(route.env) + (app.map { sortedEnv(config.apps[$0.index].env) } ?? []) }
        for (ext, found) in cgiScripts.interpreters where found == nil {
            logger.error("cgi.interpreters: \(config.cgi.interpreters[ext] ?? "?") (for \(ext) files) is not in PATH; such scripts answer 502")
        }
        self.logger = logger
        self.errorSink = errorSink
        self.accessLog = accessLog
        let l = config.limits
        limits = HTTPLimits(maxRequestLine: l.maxRequestLine, maxHeaderCount: l.maxHeaderCount,
                            maxHeaderFieldSize: l.maxHeaderFieldSize, maxHeadSize: l.maxHeadSize,
                            maxChunkExtension: l.maxChunkExtension, maxBodySize: l.maxBodySize)
    }

    /// A new connection's TLS on listener `index`, if that listener speaks it.
    func newTLS(listener index: Int) -> ClientTLS? {
        guard index < tlsContexts.count, let context = tlsContexts[index] else { return nil }
        followTicketRotation()
        return ClientTLS(context)
    }

    /// Takes the master's new ticket keys, if it rotated them since we last looked (an
    /// atomic load per connection; the keys are copied only after a rotation).
    func followTicketRotation() {
        guard let keys = dispatcher.table.ticketKeys, keys.sequence != ticketSequence.load(ordering: .relaxed) else { return }
        ticketSequence.store(keys.sequence, ordering: .relaxed)
        for case let c? in tlsContexts { c.useTicketKey(keys.current, previous: keys.previous) }
    }

    /// The Date header value, formatted once a second.
    public func httpDate() -> String {
        let now = Host.epochSeconds()
        return counters.withLock {
            if now != dateSecond {
                dateSecond = now
                dateValue = HTTPDate.format(epochSeconds: now)
            }
            return dateValue
        }
    }

    /// A short id that ties a request's access-log line to its error-log lines.
    public func nextRequestID() -> RequestID {
        let n = counters.withLock {
            requestCounter += 1
            return requestCounter
        }
        return RequestID(prefix: requestIDPrefix, number: n)
    }

    func requestFinished() {
        let reached = counters.withLock {
            requestsServed += 1
            publish()
            return requestLimit > 0 && requestsServed >= requestLimit
        }
        if reached && !draining {
            logger.info("max_requests (\(requestLimit)) reached; finishing, then exiting so the master starts a fresh worker")
            draining = true
        }
    }

    /// Whether a response may offer keep-alive. Not once draining, and not for the
    /// request that reaches max_requests: a worker about to go tells its clients so
    /// (Connection: close) rather than close a connection they may be sending on.
    var mayKeepAlive: Bool {
        !draining && !(requestLimit > 0 && counters.withLock { requestsServed } + 1 >= requestLimit)
    }

    /// A connection the client wanted kept, closed because the worker drains: it is shut
    /// for writing and read until the client closes (lingering), so a request the client
    /// sent behind our Connection: close response is never answered with a reset.
    public func closedByDrain(_ head: HTTPRequestHead) -> Bool { draining && head.keepAlive }

    /// The drain rule for a connection with no request in progress. A connection whose
    /// last response offered keep-alive stays open until its keep-alive deadline, as it
    /// would have anyway (at least 1 s after the drain began), and a request it sends
    /// meanwhile is served with Connection: close. Closing it at once would race a
    /// request the client has already sent (gunicorn #3394); then every kept connection
    /// of a busy client ends by a Connection: close, never by a close it cannot see.
    public func idleDeadline(_ deadline: Double) -> Double {
        guard draining, let since = drainStartedAt else { return deadline }  // the atomic first: no lock per request
        return min(deadline, since + max(config.server.keepalive, 1))
    }

    /// A client connection opened (+1) or closed (-1).
    public func connectionsChanged(by delta: Int) {
        counters.withLock {
            openConnections += delta
            publish()
        }
    }

    /// Updates this worker's counters on the status page (the lock is held).
    func publish() {
        dispatcher.publish(workerSlot: workerRecord, requests: requestsServed, connections: openConnections)
    }

    /// The directory a static or PHP route serves files from, or in which an extension
    /// route's scripts must exist.
    static func documentRoot(of route: RouteConfig, _ config: Configuration) -> String? {
        switch route.target {
        case .static(let dir): return dir
        case .app(let name) where route.php: return config.app(named: name)?.root
        case .app(let name) where route.match.isExtension: return config.app(named: name)?.root
        default: return nil
        }
    }

    static func treeKey(_ root: String, _ allowSymlinks: Bool) -> String { root + (allowSymlinks ? "\u{0}links" : "") }

    /// The directory route `i` serves (static, php and extension routes with a root).
    func documentTree(route i: Int) -> DocumentTree? { routeTrees[i] }

    /// Whether the i-th listener (they come in `bind` order) speaks the PROXY protocol.
    func speaksProxyProtocol(listener i: Int) -> Bool {
        let s = config.server
        return i < s.bind.count && s.proxyProtocol.contains(s.bind[i])
    }

}

extension WorkerContext {
    /// Writes an exchange's notes to the error log with the request's metadata: the one
    /// place where the engine's words become log lines, for every worker class.
    func log(_ notes: [ExchangeNote], _ meta: @autoclosure () -> Logger.Metadata) {
        guard !notes.isEmpty else { return }
        let m = meta()
        for n in notes {
            switch n.level {
            case .debug: logger.debug("\(n.message)", metadata: m)
            case .info: logger.info("\(n.message)", metadata: m)
            case .warning: logger.warning("\(n.message)", metadata: m)
            case .error: logger.error("\(n.message)", metadata: m)
            }
        }
    }
}

extension WorkerContext: SessionHost {
    public func offersKeepAlive(to head: HTTPRequestHead) -> Bool {
        head.keepAlive && config.server.keepalive > 0 && mayKeepAlive
    }
}
