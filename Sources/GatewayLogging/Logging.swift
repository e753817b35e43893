import Logging
import Synchronization
import GatewaySystem

/// Where log lines go: stderr, or a file that USR1 reopens (logrotate's habit).
public final class LogSink: Sendable {
    private struct State {
        var fd: FileDescriptor
        var path: String?
    }
    private let state: Mutex<State>

    /// `path` nil or "-": the inherited fd `defaultFD` (2 for the error log, 1 for access).
    public init(path: String?, defaultFD: Int32) {
        let p = (path == nil || path == "-") ? nil : path
        let fd = p.flatMap { try? Host.openForAppend($0) } ?? FileDescriptor(defaultFD)
        state = Mutex(State(fd: fd, path: p))
    }

    public func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        state.withLock { s in try? s.fd.writeAll(bytes) }
    }

    /// Reopens a log file (after rotation); stderr/stdout stay as they are.
    public func reopen() {
        state.withLock { s in
            guard let path = s.path, let fd = try? Host.openForAppend(path) else { return }
            try? s.fd.close()
            s.fd = fd
        }
    }
}

/// swift-log handler: "2026-11-22 03:40:00 [INFO] [worker 1234] message key=value".
public struct GatewayLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let sink: LogSink
    let role: String

    public init(sink: LogSink, role: String, level: Logger.Level) {
        self.sink = sink
        self.role = role
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let extra { all.merge(extra) { $1 } }
        let tail = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(Host.utcTimestamp()) [\(level.rawValue.uppercased())] [\(role) \(Processes.currentPID)] \(message)\(tail)"
        sink.write(Self.escapingControls(line))
    }

    /// The last line of defence for text from clients and apps: control bytes other
    /// than newline and tab become \xNN, so nothing can move a terminal's cursor, hide
    /// text or fake a line. (Messages may span lines on purpose: a config error list.)
    static func escapingControls(_ line: String) -> String {
        guard line.utf8.contains(where: { ($0 < 0x20 && $0 != 0x0A && $0 != 0x09) || $0 == 0x7F }) else { return line }
        var out: [UInt8] = []
        out.reserveCapacity(line.utf8.count + 16)
        let hex = Array("0123456789abcdef".utf8)
        for b in line.utf8 {
            if (b < 0x20 && b != 0x0A && b != 0x09) || b == 0x7F {
                out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public enum GatewayLogging {
    /// A logger for this process, writing to `sink`.
    public static func logger(role: String, sink: LogSink, level: String) -> Logger {
        let lvl: Logger.Level
        switch level {
        case "trace": lvl = .trace
        case "debug": lvl = .debug
        case "notice": lvl = .notice
        case "warning": lvl = .warning
        case "error": lvl = .error
        case "critical": lvl = .critical
        default: lvl = .info
        }
        return Logger(label: "gatewayd.\(role)") { _ in GatewayLogHandler(sink: sink, role: role, level: lvl) }
    }
}
