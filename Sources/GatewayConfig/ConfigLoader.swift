import HTTPWire
import TOMLKit

/// Turns gateway.toml text into a validated `Configuration`, or a `ConfigError` listing
/// every problem as `file:line: key: message`.
public enum ConfigLoader {
    static let topKeys = ["server", "limits", "timeouts", "log", "cgi", "app", "route"]
    static let serverKeys = ["bind", "workers", "worker_class", "threads", "worker_connections", "timeout",
                             "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter", "backlog",
                             "unix_socket_mode", "pidfile", "user", "group", "server_name", "status_path", "metrics_path", "forwarded_allow_ips", "proxy_protocol",
                             "forwarded_header", "status_allow"]
    static let limitKeys = ["max_request_line", "max_header_count", "max_header_field_size", "max_head_size",
                            "max_chunk_extension", "max_body_size", "max_response_head"]
    static let timeoutKeys = ["header", "body", "body_total", "send", "backend_connect", "backend_read"]
    static let logKeys = ["level", "error_log", "access_log", "access_log_format"]
    static let appKeys = ["name", "command", "connect", "processes", "max_conns", "queue_timeout", "env", "env_copy",
                          "root", "cwd", "user", "group", "max_requests", "keep_conn", "pm", "min_spare", "max_spare",
                          "idle_timeout", "slow_request"]
    static let cgiKeys = ["max_processes", "queue_timeout", "timeout", "kill_grace", "interpreters"]
    static let routeKeys = ["path", "extension", "app", "cgi", "static", "env", "allow_symlinks", "index", "php", "deny", "allow"]
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

        guard r.issues.isEmpty else {
            throw ConfigError(issues: r.issues.sorted { ($0.line ?? 0, $0.key) < ($1.line ?? 0, $1.key) })
        }
        return Configuration(server: server, limits: limits, timeouts: timeouts, log: log, cgi: cgi, apps: apps, routes: routes, sourcePath: file)
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
        if let d = r.duration(t, "timeout", p) { s.timeout = d }
        if let d = r.duration(t, "graceful_timeout", p, allowZero: true) { s.gracefulTimeout = d }
        if let d = r.duration(t, "keepalive", p, allowZero: true) { s.keepalive = d }
        if let n = r.int(t, "max_requests", p, min: 0) { s.maxRequests = n }
        if let n = r.int(t, "max_requests_jitter", p, min: 0) { s.maxRequestsJitter = n }
        if let n = r.int(t, "backlog", p, max: 65535) { s.backlog = n }
        if let v = t["unix_socket_mode"] {
            if let m = v.string.flatMap(ConfigValues.parseMode) ?? v.int.flatMap({ (0...0o777).contains($0) ? $0 : nil }) {
                s.unixSocketMode = m
            } else {
                r.fail("server.unix_socket_mode", "expected an octal mode such as \"0660\", got \(r.describe(v))")
            }
        }
        if let f = r.string(t, "pidfile", p) { s.pidfile = r.resolve(f) }
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

    static func readApp(_ r: inout ConfigReader, _ t: TOMLTable, path p: String, defaultProcesses: Int) -> AppConfig? {
        r.rejectUnknownKeys(t, path: p, allowed: appKeys)
        let before = r.issues.count
        let name = r.string(t, "name", p)
        if t["name"] == nil { r.fail(p, "needs a name") }
        if let n = name, !n.unicodeScalars.allSatisfy({ $0 == "-" || $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }) {
            r.fail("\(p).name", "use letters, digits, - and _ only, got \"\(n)\"")
        }
        let command = r.stringArray(t, "command", p, allowSingle: false)
        let connect = r.string(t, "connect", p)
        let processes = r.int(t, "processes", p, max: 4096)
        let maxConns = r.int(t, "max_conns", p, max: 65535)
        var kind: AppConfig.Kind? = nil
        switch (command, connect) {
        case (nil, nil):
            if t["command"] == nil && t["connect"] == nil { r.fail(p, "needs either command (gatewayd runs the app) or connect (the app runs elsewhere)") }
        case (let cmd?, nil):
            if cmd.isEmpty { r.fail("\(p).command", "must name a program") }
            if t["max_conns"] != nil { r.fail("\(p).max_conns", "applies to connect apps; a hosted app's slots are its processes") }
            let program = cmd.first.map { $0.contains("/") ? r.resolve($0) : $0 }
            let pm = readProcessManager(&r, t, path: p, processes: processes ?? defaultProcesses)
            kind = .hosted(command: (program.map { [$0] } ?? []) + cmd.dropFirst(), pm: pm)
        case (nil, let c?):
            if t["processes"] != nil { r.fail("\(p).processes", "applies to hosted apps (command); use max_conns for connect") }
            for key in ["pm", "min_spare", "max_spare", "idle_timeout"] where t[key] != nil {
                r.fail("\(p).\(key)", "applies to hosted apps (command); gatewayd does not manage the processes of a connect app")
            }
            switch ConfigValues.parseConnect(c) {
            case .success(.unix(let path)): kind = .external(.unix(path: r.resolve(path)), maxConns: maxConns ?? 8)
            case .success(let a): kind = .external(a, maxConns: maxConns ?? 8)
            case .failure(let e): r.fail("\(p).connect", e.message)
            }
        case (_?, _?):
            r.fail(p, "has both command and connect; choose one")
        }
        let queueTimeout = r.duration(t, "queue_timeout", p, allowZero: true) ?? 10
        let env = r.stringTable(t, "env", p) ?? [:]
        let envCopy = r.stringArray(t, "env_copy", p) ?? []
        for v in envCopy where !r.isEnvName(v) { r.fail("\(p).env_copy", "\"\(v)\" is not a valid environment variable name") }
        let root = r.string(t, "root", p).map(r.resolve)
        // A hosted app runs in the configuration file's directory unless told otherwise,
        // so relative arguments in `command` mean what they mean in the file.
        let cwd = r.string(t, "cwd", p).map(r.resolve) ?? (command != nil ? r.resolve(".") : nil)
        let user = r.string(t, "user", p)
        let group = r.string(t, "group", p)
        let maxRequests = r.int(t, "max_requests", p, min: 0) ?? 0
        var keep = false
        if let v = t["keep_conn"] {
            if let b = v.bool { keep = b } else { r.fail("\(p).keep_conn", "expected true or false, got \(r.describe(v))") }
        }
        let slow = r.duration(t, "slow_request", p, allowZero: true) ?? 5
        guard r.issues.count == before, let name, let kind else { return nil }
        return AppConfig(name: name, kind: kind, queueTimeout: queueTimeout, env: env, envCopy: envCopy, root: root,
                         cwd: cwd, user: user, group: group, maxRequests: maxRequests, keepConnection: keep, slowRequest: slow)
    }

    /// pm, processes, min_spare, max_spare and idle_timeout of a hosted app, checked together.
    static func readProcessManager(_ r: inout ConfigReader, _ t: TOMLTable, path p: String, processes: Int) -> ProcessManager {
        let mode = r.choice(t, "pm", p, ProcessManager.Mode.self) ?? .static
        var pm = ProcessManager(mode: mode, maxProcesses: processes, minSpare: 1, maxSpare: max(1, processes / 2), idleTimeout: 10)
        let minSpare = r.int(t, "min_spare", p, min: 0, max: 4096)
        let maxSpare = r.int(t, "max_spare", p, min: 1, max: 4096)
        let idle = r.duration(t, "idle_timeout", p)
        if mode != .dynamic {
            for key in ["min_spare", "max_spare"] where t[key] != nil { r.fail("\(p).\(key)", "applies to pm = \"dynamic\" only") }
        }
        if mode == .static, t["idle_timeout"] != nil { r.fail("\(p).idle_timeout", "applies to pm = \"dynamic\" or \"ondemand\"") }
        if let v = minSpare { pm.minSpare = v }
        if let v = maxSpare { pm.maxSpare = v } else { pm.maxSpare = max(pm.minSpare, pm.maxSpare) }
        if let v = idle { pm.idleTimeout = v }
        if mode == .dynamic {
            if pm.minSpare > pm.maxSpare { r.fail("\(p).min_spare", "is larger than max_spare (\(pm.maxSpare))") }
            if pm.maxSpare > processes { r.fail("\(p).max_spare", "is larger than processes (\(processes))") }
        }
        return pm
    }

    static func readCGI(_ r: inout ConfigReader, _ t: TOMLTable) -> CGIConfig {
        let p = "cgi"
        r.rejectUnknownKeys(t, path: p, allowed: cgiKeys)
        var c = CGIConfig()
        if let n = r.int(t, "max_processes", p, max: 4096) { c.maxProcesses = n }
        if let d = r.duration(t, "queue_timeout", p, allowZero: true) { c.queueTimeout = d }
        if let d = r.duration(t, "timeout", p) { c.timeout = d }
        if let d = r.duration(t, "kill_grace", p, allowZero: true) { c.killGrace = d }
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

    static func readRoute(_ r: inout ConfigReader, _ t: TOMLTable, path p: String) -> RouteConfig? {
        r.rejectUnknownKeys(t, path: p, allowed: routeKeys)
        let before = r.issues.count
        let path = r.string(t, "path", p)
        let ext = r.string(t, "extension", p)
        var match: RouteConfig.Match? = nil
        switch (path, ext) {
        case (let s?, nil):
            if s.hasPrefix("/") { match = .path(s) } else { r.fail("\(p).path", "must start with /, got \"\(s)\"") }
        case (nil, let e?):
            if e.hasPrefix("."), e.count > 1, !e.contains("/") { match = .extension(e) }
            else { r.fail("\(p).extension", "expected an extension such as \".php\", got \"\(e)\"") }
        case (_?, _?):
            r.fail(p, "has both path and extension; choose one")
        case (nil, nil):
            if t["path"] == nil && t["extension"] == nil { r.fail(p, "needs path (a URL prefix) or extension (such as \".php\")") }
        }
        var deny = false
        if let v = t["deny"] {
            if let b = v.bool { deny = b } else { r.fail("\(p).deny", "expected true or false, got \(r.describe(v))") }
        }
        let allow = ipRanges(&r, t, "allow", p) ?? []
        if t["allow"] != nil && allow.isEmpty && r.issues.count == before { r.fail("\(p).allow", "lists no one; use deny = true to refuse everyone") }
        if deny && t["allow"] != nil { r.fail("\(p).allow", "has no effect with deny = true (everyone gets 403)") }
        let targets = ["app", "cgi", "static"].filter { t[$0] != nil }
        var target: RouteConfig.Target? = nil
        if targets.isEmpty && deny {
            target = .deny  // `path = "/inc", deny = true` needs nothing behind it
        } else if targets.count != 1 {
            r.fail(p, targets.isEmpty ? "needs one of app, cgi or static (or deny = true)" : "has \(targets.joined(separator: " and ")); choose one")
        } else if let a = r.string(t, "app", p) {
            target = .app(a)
        } else if let c = r.string(t, "cgi", p) {
            target = .cgi(r.resolve(c))
        } else if let s = r.string(t, "static", p) {
            target = .static(r.resolve(s))
        }
        let env = r.stringTable(t, "env", p) ?? [:]
        if !env.isEmpty, case .static? = target { r.fail("\(p).env", "has no effect on a static route") }
        var allowSymlinks = false
        if let v = t["allow_symlinks"] {
            if let b = v.bool { allowSymlinks = b } else { r.fail("\(p).allow_symlinks", "expected true or false, got \(r.describe(v))") }
        }
        var php = false
        if let v = t["php"] {
            if let b = v.bool { php = b } else { r.fail("\(p).php", "expected true or false, got \(r.describe(v))") }
            if case .app? = target {} else { r.fail("\(p).php", "applies to app routes only (the app serving PHP)") }
            if case .extension? = match { r.fail("\(p).php", "needs a path route (such as path = \"/\"); it finds the .php files itself") }
        }
        if allowSymlinks, case .app? = target, !php { r.fail("\(p).allow_symlinks", "applies to cgi, static and php routes only") }
        let index = r.stringArray(t, "index", p)
        if let index {
            if index.isEmpty || !index.allSatisfy({ !$0.isEmpty && !$0.contains("/") && !$0.hasPrefix(".") }) {
                r.fail("\(p).index", "expected file names such as [\"index.html\"] (no slashes, not hidden), got \(index)")
            }
            if case .cgi? = target { r.fail("\(p).index", "applies to static and php routes only") }
            if case .app? = target, !php { r.fail("\(p).index", "applies to static and php routes only") }
        }
        guard r.issues.count == before, let match, let target else { return nil }
        return RouteConfig(match: match, target: target, env: env, allowSymlinks: allowSymlinks, index: index, php: php,
                           deny: deny, allow: allow)
    }

    static func crossCheck(_ r: inout ConfigReader, server: ServerConfig, apps: [AppConfig], routes: [RouteConfig]) {
        var seen = Set<String>()
        for (i, a) in apps.enumerated() where !seen.insert(a.name).inserted {
            r.fail("app[\(i)].name", "another app is already named \"\(a.name)\"")
        }
        var names: [String] = []
        for a in apps where !names.contains(a.name) { names.append(a.name) }
        for (i, route) in routes.enumerated() {
            if case .app(let name) = route.target, !names.contains(name) {
                let hint = DidYouMean.suggest(name, from: names).map { "; did you mean \"\($0)\"?" } ?? ""
                let known = names.isEmpty ? "no [[app]] is defined" : "known apps: \(names.joined(separator: ", "))"
                r.fail("route[\(i)].app", "no app named \"\(name)\" (\(known))\(hint)")
            }
        }
        for (i, route) in routes.enumerated() where route.php {
            if case .app(let name) = route.target, let app = apps.first(where: { $0.name == name }), app.root == nil {
                r.fail("route[\(i)].php", "app \"\(name)\" needs root (its document root): the PHP files are looked up there")
            }
        }
        var matches = Set<String>()
        for (i, route) in routes.enumerated() {
            let key: String
            switch route.match {
            case .path(let s): key = "path " + (s.count > 1 && s.hasSuffix("/") ? String(s.dropLast()) : s)
            case .extension(let e): key = "extension " + e
            }
            if !matches.insert(key).inserted { r.fail("route[\(i)]", "another route already matches \(key)") }
        }
        if server.maxRequestsJitter > 0 && server.maxRequests == 0 {
            r.fail("server.max_requests_jitter", "has no effect without server.max_requests")
        }
    }
}
