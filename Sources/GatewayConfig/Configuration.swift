import HTTPWire
/// The validated configuration: every value present, every default applied, every
/// relative path resolved against the configuration file's directory.
public struct Configuration: Sendable, Equatable {
    public var server: ServerConfig
    public var limits: LimitsConfig
    public var timeouts: TimeoutsConfig
    public var log: LogConfig
    public var cgi: CGIConfig
    public var apps: [AppConfig]
    public var routes: [RouteConfig]
    /// The file it came from, as the user named it (for messages and reloads).
    public var sourcePath: String
    /// Listeners that speak TLS, with their certificates (several on one bind: by SNI).
    public var tls: [TLSConfig] = []

    /// The certificates of one listener, the default first.
    public func tls(for bind: BindAddress) -> [TLSConfig] { tls.filter { $0.bind == bind } }

    public func app(named name: String) -> AppConfig? { apps.first { $0.name == name } }
}

public enum WorkerClass: String, Sendable, CaseIterable {
    case sync, thread, epoll
}

/// A listening address: `host:port`, `[v6]:port` or `unix:/path`.
public enum BindAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case tcp6(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let h, let p): return "\(h):\(p)"
        case .tcp6(let h, let p): return "[\(h)]:\(p)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// Where an external FastCGI app listens (`connect`).
public enum ConnectAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let h, let p): return h.contains(":") ? "[\(h)]:\(p)" : "\(h):\(p)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

public struct ServerConfig: Sendable, Equatable {
    public var bind: [BindAddress]
    public var workers: Int
    public var workerClass: WorkerClass
    public var threads: Int
    public var workerConnections: Int
    /// Seconds a worker may stay silent before the master kills it.
    public var timeout: Double
    public var gracefulTimeout: Double
    /// Seconds an idle keep-alive connection is kept; 0 closes after each response.
    public var keepalive: Double
    public var maxRequests: Int
    public var maxRequestsJitter: Int
    public var backlog: Int
    /// Seconds between new TLS session ticket keys (the previous one still opens tickets
    /// for as long again).
    public var tlsTicketRotation: Double = 43200
    /// HTTP/2 (epoll workers): h2 offered by ALPN on TLS listeners, and with `h2c` spoken
    /// on plain ones to clients that begin with its preface (prior knowledge).
    public var http2 = true
    public var h2c = false
    /// Permission bits of unix listening sockets.
    public var unixSocketMode: Int
    public var pidfile: String?
    public var user: String?
    public var group: String?
    /// SERVER_NAME for every request when set (nginx's $server_name); otherwise the
    /// request's host, or "localhost" when it has none.
    public var serverName: String? = nil
    /// Path of the status page (off when nil), like php-fpm's pm.status_path.
    public var statusPath: String? = nil
    /// Path of the Prometheus metrics (off when nil).
    public var metricsPath: String? = nil
    /// Peers trusted to say who the client is (X-Forwarded-For/-Proto, Forwarded), as
    /// gunicorn's forwarded_allow_ips. Empty: nobody; headers are passed on, not believed.
    public var forwardedAllowIPs: [IPRange] = []
    /// Listeners (from `bind`) whose connections start with a PROXY protocol header (v1 or v2).
    public var proxyProtocol: [BindAddress] = []
    /// The header the trusted proxies write: only that one is believed (gunicorn reads
    /// X-Forwarded-For by default; nginx and HAProxy write it and pass Forwarded through).
    public var forwardedHeader: ForwardedHeaders.Kind = .xForwardedFor
    /// Clients that may see the status page and /metrics (backend addresses, pids).
    public var statusAllow: [IPRange] = ServerConfig.loopback
    /// Static files each worker keeps open per document root (nginx's open_file_cache
    /// max); 0 opens the file for every request.
    public var openFileCache = 256
    /// Seconds a kept file is used before it is opened again (nginx's
    /// open_file_cache_valid); changes inside the root are seen at once anyway.
    public var openFileCacheValid = 1.0
    /// The master's control socket (`gatewayd reload-app`); default: PIDFILE.ctl when
    /// a pidfile is set, else none.
    public var controlSocket: String? = nil
    public var controlPath: String? { controlSocket ?? pidfile.map { $0 + ".ctl" } }
    public static let loopback = [IPRange("127.0.0.0/8")!, IPRange("::1")!]

    public static func defaults(cpuCount: Int) -> ServerConfig {
        ServerConfig(bind: [.tcp(host: "127.0.0.1", port: 8000)], workers: 2 * max(cpuCount, 1) + 1,
                     workerClass: .sync, threads: 4, workerConnections: 1000, timeout: 30, gracefulTimeout: 30,
                     keepalive: 2, maxRequests: 0, maxRequestsJitter: 0, backlog: 2048, unixSocketMode: 0o660,
                     pidfile: nil, user: nil, group: nil)
    }
}

public struct LimitsConfig: Sendable, Equatable {
    public var maxRequestLine = 8192
    public var maxHeaderCount = 100
    public var maxHeaderFieldSize = 8192
    public var maxHeadSize = 65536
    public var maxChunkExtension = 1024
    public var maxBodySize: UInt64 = 100 << 20
    /// Largest response head a CGI or FastCGI app may send (502 past it).
    public var maxResponseHead = 65536
    public init() {}
}

public struct TimeoutsConfig: Sendable, Equatable {
    /// Seconds to receive a whole request head (slowloris guard); 408 then close.
    public var header: Double = 10
    /// Seconds without progress while reading a request body.
    public var body: Double = 30
    /// Seconds for a whole request body, however steadily it trickles in; then 408.
    public var bodyTotal: Double = 60
    /// Seconds without progress while writing to a client.
    public var send: Double = 30
    public var backendConnect: Double = 5
    /// Seconds without output from an app before 504.
    public var backendRead: Double = 60
    public init() {}
}

/// How each worker runs CGI programs (routes with `cgi = ...`).
public struct CGIConfig: Sendable, Equatable {
    /// CGI programs one worker runs at once; further requests wait for a place.
    public var maxProcesses = 16
    /// Seconds a request may wait for a place before 503.
    public var queueTimeout: Double = 10
    /// Seconds a program may run; then SIGTERM to its process group, and 504 if it sent nothing.
    public var timeout: Double = 60
    /// Seconds between that SIGTERM and SIGKILL.
    public var killGrace: Double = 2
    /// Programs for files by extension (".pl" -> "perl"), like lighttpd's cgi.assign:
    /// such a file needs no execute bit; the interpreter runs it. A name without "/" is
    /// looked up in PATH when the worker starts.
    public var interpreters: [String: String] = [:]
    /// Directories an `X-Sendfile` answer of a CGI program may name a file under.
    public var sendfileRoots: [String] = []
    public init() {}
}

public enum AccessLogFormat: String, Sendable, CaseIterable {
    case combined, json
}

public struct LogConfig: Sendable, Equatable {
    public var level = "info"
    /// "-" is stderr.
    public var errorLog = "-"
    /// "-" is stdout; "off" disables it.
    public var accessLog = "-"
    public var accessLogFormat = AccessLogFormat.combined
    public init() {}
}

public struct AppConfig: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// gatewayd starts and supervises these processes.
        case hosted(command: [String], pm: ProcessManager)
        /// Someone else runs the app, on one server or several (each with its concurrency,
        /// php-fpm's pm.max_children, and its share of the load).
        case external([UpstreamServer])
    }

    /// Which server slot `s` belongs to: each server's slots follow the last one's.
    public static func server(ofSlot s: Int, _ servers: [UpstreamServer]) -> Int {
        var first = 0
        for (k, server) in servers.enumerated() {
            if s < first + server.slots { return k }
            first += server.slots
        }
        return max(0, servers.count - 1)
    }

    /// The servers of a connect app (none for a hosted one).
    public var servers: [UpstreamServer] {
        if case .external(let s) = kind { return s }
        return []
    }

    public var name: String
    public var kind: Kind
    public var queueTimeout: Double
    public var env: [String: String]
    /// Variables copied from gatewayd's own environment (hosted apps start clean).
    public var envCopy: [String]
    /// DOCUMENT_ROOT; SCRIPT_FILENAME = root + SCRIPT_NAME.
    public var root: String?
    /// Working directory of hosted processes (default: the configuration file's directory).
    public var cwd: String?
    public var user: String?
    public var group: String?
    /// Requests before a hosted process is recycled (0: never).
    public var maxRequests: Int
    /// Reuse FastCGI connections (FCGI_KEEP_CONN). Off by default: a kept idle connection
    /// ties up a single-threaded app process (libfcgi, php-cgi), so it is only safe when
    /// the app has a process or thread to spare for every connection kept.
    public var keepConnection: Bool = false
    /// A request that holds its slot longer than this counts as slow (status page, log).
    public var slowRequest: Double = 5
    /// Directories an `X-Sendfile` answer may name a file under (empty: X-Sendfile is
    /// refused with a 502). X-Accel-Redirect needs none: it names a route marked internal.
    public var sendfileRoots: [String] = []
    /// The most time the app may hold a request, from when it has it (0: no limit): then
    /// 504 if nothing was sent, and the process that holds it is ended and replaced
    /// (hosted; php-fpm's request_terminate_timeout, uWSGI's harakiri) or the request
    /// aborted with FCGI_ABORT_REQUEST and its connection closed (connect).
    public var requestTimeout: Double = 0
    /// Hosted: seconds between the TERM and the KILL when a process is ended.
    public var killGrace: Double = 5
    /// Hosted: a signal ("SIGUSR1") sent to a process just before a slow-request entry is
    /// written, so the app can print its own stack to stderr (Python's faulthandler).
    public var dumpSignal: String? = nil

    /// Connection slots: one per process for a hosted app, max_conns for an external one.
    public var slotCount: Int {
        switch kind {
        case .hosted(_, let pm): return pm.maxProcesses
        case .external(let servers): return servers.reduce(0) { $0 + $1.slots }
        }
    }

    /// Passive health of a connect app's servers (nginx's max_fails and fail_timeout): a
    /// server that refuses, resets or times out `maxFails` times in a row is left alone
    /// for `failTimeout` seconds (doubling while it keeps failing, up to 8 times), then tried again.
    public var maxFails: Int = 3
    public var failTimeout: Double = 10
    /// Active health of a connect app's servers: a probe every `healthInterval` seconds
    /// (0: none), FCGI_GET_VALUES or a GET of `healthPath`, answered within
    /// `healthTimeout`. A server down is back at its first good probe; `maxFails` failed
    /// probes in a row mark it down. The same probe learns the capacity of a server
    /// without max_conns.
    public var healthInterval: Double = 5
    public var healthTimeout: Double = 2
    public var healthPath: String? = nil
    /// Seconds between lookups of a connect app's host names (0: only at start and HUP).
    public var resolveInterval: Double = 30
}

/// One server of a connect app: its address, the connections it takes at once (its
/// slots), and its weight in the choice of server (the fewest requests in flight per weight).
public struct UpstreamServer: Sendable, Equatable {
    public var address: ConnectAddress
    /// The connections used at first; with `learnsCapacity`, until the server says
    /// how many it takes (FCGI_MAX_CONNS).
    public var maxConns: Int
    public var weight: Int
    /// No max_conns was given: its capacity is learned from FCGI_GET_VALUES.
    public var learnsCapacity: Bool

    /// The most a server's learned capacity can be: its slots are made at start.
    public static let learnedCeiling = 64

    /// The slots made for it in the table (a learned capacity may use more than maxConns).
    public var slots: Int { learnsCapacity ? max(maxConns, Self.learnedCeiling) : maxConns }

    public init(address: ConnectAddress, maxConns: Int = 8, weight: Int = 1, learnsCapacity: Bool = false) {
        self.address = address
        self.maxConns = maxConns
        self.weight = weight
        self.learnsCapacity = learnsCapacity
    }
}

/// How many processes a hosted app runs, as php-fpm's pm settings.
public struct ProcessManager: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Always `maxProcesses`.
        case `static`
        /// Between `minSpare` idle and `maxProcesses`; idle ones beyond `maxSpare` retire.
        case dynamic
        /// None until a request needs one; each retires after `idleTimeout` idle.
        case ondemand
    }

    public var mode: Mode
    /// static: the process count; dynamic and ondemand: the most processes at once.
    public var maxProcesses: Int
    /// dynamic: idle processes kept ready (also the count started at boot).
    public var minSpare: Int
    /// dynamic: idle processes beyond this are retired.
    public var maxSpare: Int
    /// ondemand and dynamic: seconds an idle process may wait before it is retired.
    public var idleTimeout: Double

    public init(mode: Mode, maxProcesses: Int, minSpare: Int, maxSpare: Int, idleTimeout: Double) {
        self.mode = mode
        self.maxProcesses = maxProcesses
        self.minSpare = minSpare
        self.maxSpare = maxSpare
        self.idleTimeout = idleTimeout
    }

    /// Processes started at boot.
    public var initialProcesses: Int {
        switch mode {
        case .static: return maxProcesses
        case .dynamic: return minSpare
        case .ondemand: return 0
        }
    }

    /// When `processes` is not set: as many as requests can be in flight at once.
    /// sync: one per worker; thread: workers x threads; epoll: the loop's concurrency
    /// is bounded by the slots, not by threads, so 2 per core (at least 4): app
    /// processes that mostly compute gain nothing from more, and the second per core
    /// covers those waiting on a database.
    public static func defaultProcesses(for server: ServerConfig, cpuCount: Int) -> Int {
        switch server.workerClass {
        case .sync: return server.workers
        case .thread: return server.workers * server.threads
        case .epoll: return max(4, 2 * cpuCount)
        }
    }
}

public struct RouteConfig: Sendable, Equatable {
    public enum Match: Sendable, Equatable {
        /// A path prefix at a segment boundary ("/api" covers "/api/x", not "/apix").
        case path(String)
        /// A file extension (".php"): the path is split after it.
        case `extension`(String)

        public var isExtension: Bool { if case .extension = self { return true } else { return false } }
    }

    public enum Target: Sendable, Equatable {
        case app(String)
        case cgi(String)
        case `static`(String)
        /// A route with `deny = true` and nothing behind it: 403 for everyone.
        case deny
    }

    public var match: Match
    public var target: Target
    /// Extra meta-variables for the app or CGI programs.
    public var env: [String: String]
    /// CGI and static: a file may be a symbolic link to one outside the directory.
    public var allowSymlinks: Bool
    /// Static and PHP routes: the files tried for a path ending in "/", in order.
    public var index: [String]
    /// An app route in front of a PHP app (Caddy's php_fastcgi, nginx's usual PHP
    /// locations in one setting): files under the app's root are served as static files,
    /// "/x.php/rest" runs x.php with PATH_INFO "/rest", a directory runs its index.php,
    /// and any other path that names no file runs the front controller (/index.php).
    /// Only an existing regular .php file is ever run.
    public var php: Bool
    /// 403 for every request under the route (nginx's `deny all;`).
    public var deny: Bool = false
    /// When not empty, only clients in these networks pass; others get 403.
    public var allow: [IPRange] = []
    /// A static route only an app's X-Accel-Redirect reaches (nginx's `internal;`): a
    /// client that asks for it directly gets 404.
    public var internalOnly: Bool = false
    /// Static routes: a `file.gz` beside a file is sent as it is to clients that accept
    /// gzip (nginx's gzip_static), and every answer says `Vary: Accept-Encoding`.
    public var gzipStatic: Bool = false
    /// Responses compressed on the fly for clients that accept gzip (nginx's gzip).
    public var gzip: GzipPolicy? = nil

    public init(match: Match, target: Target, env: [String: String] = [:], allowSymlinks: Bool = false,
                index: [String]? = nil, php: Bool = false, deny: Bool = false, allow: [IPRange] = [],
                internalOnly: Bool = false) {
        self.internalOnly = internalOnly
        self.match = match
        self.target = target
        self.deny = deny || target == .deny
        self.allow = allow
        self.env = env
        self.allowSymlinks = allowSymlinks
        self.php = php
        self.index = index ?? (php ? ["index.php"] : ["index.html"])
    }
}
