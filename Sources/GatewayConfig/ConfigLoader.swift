import HTTPWire
import TOMLKit

/// Turns gateway.toml text into a validated `Configuration`, or a `ConfigError` listing
/// every problem as `file:line: key: message`.
public enum ConfigLoader {
    static let topKeys = ["server", "limits", "timeouts", "log", "cgi", "app", "route", "tls"]
    static let serverKeys = ["http2", "h2c", "bind", "workers", "worker_class", "threads", "worker_connections", "timeout",
                             "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter", "backlog", "tls_ticket_rotation",
                             "unix_socket_mode", "pidfile", "control_socket", "user", "group", "server_name", "status_path", "metrics_path", "forwarded_allow_ips", "proxy_protocol",
                             "forwarded_header", "status_allow", "open_file_cache", "open_file_cache_valid"]
    static let limitKeys = ["max_request_line", "max_header_count", "max_header_field_size", "max_head_size",
                            "max_chunk_extension", "max_body_size", "max_response_head"]
    static let timeoutKeys = ["header", "body", "body_total", "send", "backend_connect", "backend_read"]
    static let logKeys = ["level", "error_log", "access_log", "access_log_format"]
    static let appKeys = ["name", "command", "connect", "processes", "max_conns", "queue_timeout", "env", "env_copy",
                          "root", "cwd", "user", "group", "max_requests", "keep_conn", "pm", "min_spare", "max_spare",
                          "idle_timeout", "slow_request", "sendfile_roots", "request_timeout", "servers", "max_fails", "fail_timeout",
                          "kill_grace", "dump_signal", "health_interval", "health_timeout", "health_path", "resolve_interval"]
    static let cgiKeys = ["max_processes", "queue_timeout", "timeout", "kill_grace", "interpreters", "sendfile_roots"]
    static let routeKeys = ["path", "extension", "app", "cgi", "static", "env", "allow_symlinks", "index", "php", "deny", "allow", "internal",
                            "gzip_static", "gzip", "gzip_types", "gzip_min_length", "gzip_comp_level"]
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// - Parameters:
    ///   - file: the name used in messages (as the user typed it).
    ///   - baseDirectory: absolute directory for relative paths (the file's directory).
    ///   - cpuCount: for the default worker count (2 x cores + 1).
    public static func load(text: String, file: String, baseDirectory: String, cpuCount: Int) throws(ConfigError) -> Configuration {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(issues: [ConfigIssue(file: file, line: e.source.begin.line, key: "", message: "TOML syntax: \(e.description)")])
        } catch {
            throw ConfigError(issues: [ConfigIssue(file: file, line: nil, key: "", message: "TOML syntax: \(error)")])
        }
        var r = ConfigReader(file: file, index: TOMLLineIndex(text: text), base: baseDirectory)
        r.rejectUnknownKeys(root, path: "", allowed: topKeys)

        let server = readServer(&r, table(&r, root, "server"), cpuCount: cpuCount)
        let limits = readLimits(&r, table(&r, root, "limits"))
        let timeouts = readTimeouts(&r, table(&r, root, "timeouts"))
        let log = readLog(&r, table(&r, root, "log"))
        let cgi = readCGI(&r, table(&r, root, "cgi"))
        let defaultProcesses = ProcessManager.defaultProcesses(for: server, cpuCount: cpuCount)
        let apps = tableArray(&r, root, "app").enumerated().compactMap { readApp(&r, $1, path: "app[\($0)]", defaultProcesses: defaultProcesses) }
        let routes = tableArray(&r, root, "route").enumerated().compactMap { readRoute(&r, $1, path: "route[\($0)]") }
        crossCheck(&r, server: server, apps: apps, routes: routes)
        let tls = readTLS(&r, root, server: server)

        guard r.issues.isEmpty else {
            throw ConfigError(issues: r.issues.sorted { ($0.line ?? 0, $0.key) < ($1.line ?? 0, $1.key) })
        }
        return Configuration(server: server, limits: limits, timeouts: timeouts, log: log, cgi: cgi, apps: apps, routes: routes, sourcePath: file,
                             tls: tls)
    }

    static func table(_ r: inout ConfigReader, _ root: TOMLTable, _ key: String) -> TOMLTable {
        guard let v = root[key] else { return TOMLTable() }
        guard let t = v.table else { r.fail(key, "expected a table [\(key)], got \(r.describe(v))"); return TOMLTable() }
        return t
    }

    static func tableArray(_ r: inout ConfigReader, _ root: TOMLTable, _ key: String) -> [TOMLTable] {
        guard let v = root[key] else { return [] }
        guard let a = v.array else {
            r.fail(key, "expected [[\(key)]] entries (an array of tables), got \(r.describe(v))")
            return []
        }
        var out: [TOMLTable] = []
        for (i, e) in a.enumerated() {
            if let t = e.table { out.append(t) } else { r.fail("\(key)[\(i)]", "expected a table, got \(r.describe(e))") }
        }
        return out
    }

    // MARK: - Sections

    static func readServer(_ r: inout ConfigReader, _ t: TOMLTable, cpuCount: Int) -> ServerConfig {
        let p = "server"
        r.rejectUnknownKeys(t, path: p, allowed: serverKeys)
        var s = ServerConfig.defaults(cpuCount: cpuCount)
        if let binds = r.stringArray(t, "bind", p, allowSingle: true) {
            if binds.isEmpty { r.fail("server.bind", "needs at least one address") }
            var parsed: [BindAddress] = []
            for b in binds {
                switch ConfigValues.parseBind(b) {
                case .success(.unix(let path)): parsed.append(.unix(path: r.resolve(path)))
                case .success(let a): parsed.append(a)
                case .failure(let e): r.fail("server.bind", e.message)
                }
            }
            if !parsed.isEmpty { s.bind = parsed }
            if Set(parsed.map(\.description)).count != parsed.count { r.fail("server.bind", "the same address is listed twice") }
        }
        if let n = r.int(t, "workers", p, max: 1024) { s.workers = n }
        if let c = r.choice(t, "worker_class", p, WorkerClass.self) { s.workerClass = c }
        if let n = r.int(t, "threads", p, max: 4096) { s.threads = n }
        if let n = r.int(t, "worker_connections", p, max: 1_000_000) { s.workerConnections = n }
        if let n = r.int(t, "open_file_cache", p, min: 0, max: 100_000) { s.openFileCache = n }
        if let d = r.duration(t, "open_file_cache_valid", p) { s.openFileCacheValid = d }
        if let d = r.duration(t, "timeout", p) { s.timeout = d }
        if let d = r.duration(t, "graceful_timeout", p, allowZero: true) { s.gracefulTimeout = d }
        if let d = r.duration(t, "keepalive", p, allowZero: true) { s.keepalive = d }
        if let n = r.int(t, "max_requests", p, min: 0) { s.maxRequests = n }
        if let n = r.int(t, "max_requests_jitter", p, min: 0) { s.maxRequestsJitter = n }
        if let n = r.int(t, "backlog", p, max: 65535) { s.backlog = n }
        if let d = r.duration(t, "tls_ticket_rotation", p) { s.tlsTicketRotation = d }
        for key in ["http2", "h2c"] {
            guard let v = t[key] else { continue }
            guard let b = v.bool else { r.fail(ConfigReader.join(p, key), "expected true or false, got \(r.describe(v))"); continue }
            if key == "http2" { s.http2 = b } else { s.h2c = b }
        }
        if let v = t["unix_socket_mode"] {
            if let m = v.string.flatMap(ConfigValues.parseMode) ?? v.int.flatMap({ (0...0o777).contains($0) ? $0 : nil }) {
                s.unixSocketMode = m
            } else {
                r.fail("server.unix_socket_mode", "expected an octal mode such as \"0660\", got \(r.describe(v))")
            }
        }
        if let f = r.string(t, "pidfile", p) { s.pidfile = r.resolve(f) }
        if let f = r.string(t, "control_socket", p) { s.controlSocket = r.resolve(f) }
        s.user = r.string(t, "user", p)
        s.group = r.string(t, "group", p)
        if let n = r.string(t, "server_name", p) {
            if n.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { s.serverName = n } else { r.fail("server.server_name", "expected a host name without spaces or control characters, got \"\(n)\"") }
        }
        if let sp = r.string(t, "status_path", p) {
            if sp.hasPrefix("/") && !sp.contains("?") { s.statusPath = sp } else { r.fail("server.status_path", "must be a path starting with /, got \"\(sp)\"") }
        }
        if let mp = r.string(t, "metrics_path", p) {
            if mp.hasPrefix("/") && !mp.contains("?") { s.metricsPath = mp } else { r.fail("server.metrics_path", "must be a path starting with /, got \"\(mp)\"") }
            if mp == s.statusPath { r.fail("server.metrics_path", "is also the status_path") }
        }
        if let ips = ipRanges(&r, t, "forwarded_allow_ips", p) { s.forwardedAllowIPs = ips }
        if let ips = ipRanges(&r, t, "status_allow", p) { s.statusAllow = ips }
        if let k = r.choice(t, "forwarded_header", p, ForwardedHeaders.Kind.self) { s.forwardedHeader = k }
        if let v = t["proxy_protocol"] {
            if let all = v.bool {
                s.proxyProtocol = all ? s.bind : []
            } else if let names = r.stringArray(t, "proxy_protocol", p) {
                for n in names {
                    var a = ConfigValues.parseBind(n)
                    if case .success(.unix(let path)) = a { a = .success(.unix(path: r.resolve(path))) }
                    guard case .success(let address) = a, s.bind.contains(address) else {
                        r.fail("server.proxy_protocol", "\"\(n)\" is not one of the bind addresses (\(s.bind.map(\.description).joined(separator: ", ")))")
                        continue
                    }
                    s.proxyProtocol.append(address)
                }
            }
        }
        return s
    }

    /// A list of addresses and networks ("10.0.0.0/8", "::1", "*"); nil when absent.
    static func ipRanges(_ r: inout ConfigReader, _ t: TOMLTable, _ key: String, _ p: String) -> [IPRange]? {
        guard let list = r.stringArray(t, key, p, allowSingle: true) else { return nil }
        var out: [IPRange] = []
        for ip in list {
            if let range = IPRange(ip) { out.append(range) }
            else { r.fail("\(p).\(key)", "expected addresses or networks such as \"10.0.0.0/8\", \"::1\" or \"*\", got \"\(ip)\"") }
        }
        return out
    }

    static func readLimits(_ r: inout ConfigReader, _ t: TOMLTable) -> LimitsConfig {
        let p = "limits"
        r.rejectUnknownKeys(t, path: p, allowed: limitKeys)
        var l = LimitsConfig()
        func bytes(_ r: inout ConfigReader, _ key: String, min: UInt64) -> Int? {
            guard let v = r.size(t, key, p) else { return nil }
            guard v >= min && v <= 16 << 20 else { r.fail("\(p).\(key)", "must be between \(min) and 16M bytes, got \(v)"); return nil }
            return Int(v)
        }
        if let v = bytes(&r, "max_request_line", min: 64) { l.maxRequestLine = v }
        if let n = r.int(t, "max_header_count", p, max: 10_000) { l.maxHeaderCount = n }
        if let v = bytes(&r, "max_header_field_size", min: 64) { l.maxHeaderFieldSize = v }
        if let v = bytes(&r, "max_head_size", min: 256) { l.maxHeadSize = v }
        if let v = bytes(&r, "max_chunk_extension", min: 1) { l.maxChunkExtension = v }
        if let v = r.size(t, "max_body_size", p) { l.maxBodySize = v }
        if let v = bytes(&r, "max_response_head", min: 256) { l.maxResponseHead = v }
        if l.maxRequestLine > l.maxHeadSize { r.fail("limits.max_request_line", "is larger than limits.max_head_size (\(l.maxHeadSize))") }
        return l
    }

    static func readTimeouts(_ r: inout ConfigReader, _ t: TOMLTable) -> TimeoutsConfig {
        let p = "timeouts"
        r.rejectUnknownKeys(t, path: p, allowed: timeoutKeys)
        var o = TimeoutsConfig()
        if let d = r.duration(t, "header", p) { o.header = d }
        if let d = r.duration(t, "body", p) { o.body = d }
        if let d = r.duration(t, "body_total", p) { o.bodyTotal = d }
        if let d = r.duration(t, "send", p) { o.send = d }
        if let d = r.duration(t, "backend_connect", p) { o.backendConnect = d }
        if let d = r.duration(t, "backend_read", p) { o.backendRead = d }
        return o
    }

    static func readLog(_ r: inout ConfigReader, _ t: TOMLTable) -> LogConfig {
        let p = "log"
        r.rejectUnknownKeys(t, path: p, allowed: logKeys)
        var l = LogConfig()
        if let lv = r.string(t, "level", p) {
            if logLevels.contains(lv) { l.level = lv } else {
                let hint = DidYouMean.suggest(lv, from: logLevels).map { "; did you mean \"\($0)\"?" } ?? ""
                r.fail("log.level", "expected one of \(logLevels.joined(separator: ", ")), got \"\(lv)\"\(hint)")
            }
        }
        if let f = r.string(t, "error_log", p) { l.errorLog = f == "-" ? f : r.resolve(f) }
        if let f = r.string(t, "access_log", p) { l.accessLog = (f == "-" || f == "off") ? f : r.resolve(f) }
        if let f = r.choice(t, "access_log_format", p, AccessLogFormat.self) { l.accessLogFormat = f }
        return l
    }

    static func readCGI(_ r: inout ConfigReader, _ t: TOMLTable) -> CGIConfig {
        let p = "cgi"
        r.rejectUnknownKeys(t, path: p, allowed: cgiKeys)
        var c = CGIConfig()
        if let n = r.int(t, "max_processes", p, max: 4096) { c.maxProcesses = n }
        if let d = r.duration(t, "queue_timeout", p, allowZero: true) { c.queueTimeout = d }
        if let d = r.duration(t, "timeout", p) { c.timeout = d }
        if let d = r.duration(t, "kill_grace", p, allowZero: true) { c.killGrace = d }
        c.sendfileRoots = sendfileRoots(&r, t, p)
        if let v = t["interpreters"] {
            if let table = v.table {
                for ext in table.keys {
                    let key = "\(p).interpreters.\(ext)"
                    guard ext.hasPrefix("."), ext.count > 1, !ext.contains("/") else {
                        r.fail(key, "expected an extension such as \".pl\" as the key"); continue
                    }
                    guard let program = table[ext]?.string, !program.isEmpty else {
                        r.fail(key, "expected a program such as \"perl\" or \"/usr/bin/python3\""); continue
                    }
                    c.interpreters[ext] = program.contains("/") ? r.resolve(program) : program
                }
            } else {
                r.fail("\(p).interpreters", "expected a table such as { \".pl\" = \"perl\" }, got \(r.describe(v))")
            }
        }
        return c
    }
}
