import GatewayConfig
import GatewayLogging
import GatewaySystem
import Synchronization

/// One line per request: nginx's combined format plus the request time and the upstream
/// time (seconds; "-" when no app or CGI program was involved), or the same as JSON.
///
/// Sendable: the thread worker's pool threads write through one instance. The cached
/// timestamp (remade once a second) is behind a Mutex, and LogSink writes whole lines.
public final class AccessLog: Sendable {
    let sink: LogSink
    let format: AccessLogFormat
    private let clock = Mutex<(second: Int64, stamp: String)>((-1, ""))

    public init(sink: LogSink, format: AccessLogFormat) {
        self.sink = sink
        self.format = format
    }

    public struct Entry {
        public var remote: String
        public var method: String
        public var target: String
        public var version: String
        public var status: Int
        public var bytesSent: Int
        public var referer: String?
        public var userAgent: String?
        public var requestTime: Double
        public var upstreamTime: Double?
        public var requestID: String

        public init(remote: String, method: String, target: String, version: String, status: Int, bytesSent: Int,
                    referer: String?, userAgent: String?, requestTime: Double, upstreamTime: Double?, requestID: String) {
            self.remote = remote
            self.method = method
            self.target = target
            self.version = version
            self.status = status
            self.bytesSent = bytesSent
            self.referer = referer
            self.userAgent = userAgent
            self.requestTime = requestTime
            self.upstreamTime = upstreamTime
            self.requestID = requestID
        }
    }

    /// USR1: the log file is opened again (after logrotate moved it).
    public func reopen() { sink.reopen() }

    public func write(_ e: Entry) {
        let now = Host.epochSeconds()
        let stamp = clock.withLock { c in
            if c.second != now { c = (now, Host.accessLogTimestamp()) }
            return c.stamp
        }
        let rt = Self.seconds(e.requestTime)
        switch format {
        case .combined:
            let request = Self.escape("\(e.method) \(e.target) \(e.version)")
            sink.write("\(e.remote) - - [\(stamp)] \"\(request)\" \(e.status) \(e.bytesSent) \"\(Self.escape(e.referer ?? "-"))\" \"\(Self.escape(e.userAgent ?? "-"))\" \(rt) \(e.upstreamTime.map(Self.seconds) ?? "-")")
        case .json:
            var fields: [(String, String)] = [
                ("time", Self.json(stamp)), ("remote_addr", Self.json(e.remote)), ("method", Self.json(e.method)),
                ("uri", Self.json(e.target)), ("protocol", Self.json(e.version)), ("status", String(e.status)),
                ("bytes_sent", String(e.bytesSent)), ("referer", Self.json(e.referer ?? "")),
                ("user_agent", Self.json(e.userAgent ?? "")), ("request_time", rt), ("request_id", Self.json(e.requestID)),
            ]
            if let u = e.upstreamTime { fields.append(("upstream_time", Self.seconds(u))) }
            sink.write("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        }
    }

    /// Milliseconds precision, like nginx's $request_time.
    static func seconds(_ t: Double) -> String {
        let ms = Int((t * 1000).rounded())
        let frac = ms % 1000
        return "\(ms / 1000)." + (frac < 10 ? "00" : frac < 100 ? "0" : "") + "\(frac)"
    }

    /// Quotes and control bytes escaped, so a client cannot forge log lines.
    static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u == "\"" || u == "\\" { out += "\\" + String(u) }
            else if u.value < 0x20 || u.value == 0x7F { out += "\\x" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16) }
            else { out.unicodeScalars.append(u) }
        }
        return out
    }

    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if u.value < 0x20 { out += "\\u00" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16) }
                else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
