import GatewayConfig
import GatewayLogging
import GatewaySystem
import HTTPWire
import Logging

/// What every request in a worker process shares: configuration, router, logs, the
/// Date header of the current second, counters, and the drain flag.
public final class WorkerContext {
    public let config: Configuration
    public let router: Router
    public let limits: HTTPLimits
    public var logger: Logger
    public let errorSink: LogSink
    public let accessLog: AccessLog?
    public static let software = "gatewayd/0.1.0"

    /// Set by TERM: finish the request in hand, then stop.
    public var draining = false
    public private(set) var requestsServed = 0
    var requestCounter: UInt64 = 0
    var dateSecond: Int64 = -1
    var dateValue = ""
    /// Idle FastCGI connections kept per app (`keep_conn`), one per app in a blocking worker.
    var keptBackends: [String: FileDescriptor] = [:]
    /// Called while waiting (each second at most): heartbeat and signal checks.
    public var onWait: () -> Void = {}

    public init(config: Configuration, logger: Logger, errorSink: LogSink, accessLog: AccessLog?) {
        self.config = config
        self.router = Router(routes: config.routes)
        self.logger = logger
        self.errorSink = errorSink
        self.accessLog = accessLog
        let l = config.limits
        limits = HTTPLimits(maxRequestLine: l.maxRequestLine, maxHeaderCount: l.maxHeaderCount,
                            maxHeaderFieldSize: l.maxHeaderFieldSize, maxHeadSize: l.maxHeadSize,
                            maxChunkExtension: l.maxChunkExtension, maxBodySize: l.maxBodySize)
    }

    /// The Date header value, formatted once a second.
    public func httpDate() -> String {
        let now = Host.epochSeconds()
        if now != dateSecond {
            dateSecond = now
            dateValue = HTTPDate.format(epochSeconds: now)
        }
        return dateValue
    }

    /// A short id that ties a request's access-log line to its error-log lines.
    func nextRequestID() -> String {
        requestCounter += 1
        return String(Processes.currentPID, radix: 16) + "-" + String(requestCounter, radix: 16)
    }

    func requestFinished() { requestsServed += 1 }

    func takeKeptBackend(_ app: String) -> FileDescriptor? { keptBackends.removeValue(forKey: app) }

    func keepBackend(_ app: String, _ fd: FileDescriptor) {
        if let old = keptBackends.updateValue(fd, forKey: app) { try? old.close() }
    }
}
