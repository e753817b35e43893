import TOMLKit

/// [[app]] sections: hosted or connect apps and their process manager settings.
extension ConfigLoader {
    static func readApp(_ r: inout ConfigReader, _ t: TOMLTable, path p: String, defaultProcesses: Int) -> AppConfig? {
        r.rejectUnknownKeys(t, path: p, allowed: appKeys)
        let before = r.issues.count
        let name = r.string(t, "name", p)
        if t["name"] == nil { r.fail(p, "needs a name") }
        if let n = name, !n.unicodeScalars.allSatisfy({ $0 == "-" || $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }) {
            r.fail("\(p).name", "use letters, digits, - and _ only, got \"\(n)\"")
        }
        let command = r.stringArray(t, "command", p, allowSingle: false)
        // connect: one address or a list of them; servers: a list of tables (readServers
        // reads those; an empty list here only says the app is a connect app).
        var connect: [String]? = nil
        if t["servers"] != nil {
            connect = []
        } else if t["connect"]?.array != nil {
            connect = r.stringArray(t, "connect", p)
        } else if t["connect"] != nil {
            connect = r.string(t, "connect", p).map { [$0] }
        }
        let processes = r.int(t, "processes", p, max: 4096)
        let maxConns = r.int(t, "max_conns", p, max: 65535)
        var kind: AppConfig.Kind? = nil
        switch (command, connect) {
        case (nil, nil):
            if t["command"] == nil && t["connect"] == nil && t["servers"] == nil { r.fail(p, "needs either command (gatewayd runs the app) or connect (the app runs elsewhere)") }
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
            if let servers = readServers(&r, t, p, connect: c, maxConns: maxConns) { kind = .external(servers) }
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
        let roots = sendfileRoots(&r, t, p)
        let requestTimeout = r.duration(t, "request_timeout", p, allowZero: true) ?? 0
        let killGrace = r.duration(t, "kill_grace", p, allowZero: true) ?? 5
        let dumpSignal = r.string(t, "dump_signal", p).map { $0.uppercased().hasPrefix("SIG") ? $0.uppercased() : "SIG" + $0.uppercased() }
        if let s = dumpSignal, !dumpSignals.contains(s) {
            r.fail("\(p).dump_signal", "expected one of \(dumpSignals.joined(separator: ", ")), got \"\(s)\"")
        }
        if command == nil && t["connect"] != nil {
            for key in ["kill_grace", "dump_signal"] where t[key] != nil {
                r.fail("\(p).\(key)", "applies to hosted apps (command); a connect app's processes are not gatewayd's to signal")
            }
        }
        guard r.issues.count == before, let name, let kind else { return nil }
        var app = AppConfig(name: name, kind: kind, queueTimeout: queueTimeout, env: env, envCopy: envCopy, root: root,
                            cwd: cwd, user: user, group: group, maxRequests: maxRequests, keepConnection: keep, slowRequest: slow)
        app.sendfileRoots = roots
        if let n = r.int(t, "max_fails", p, max: 1000) { app.maxFails = n }
        if let d = r.duration(t, "fail_timeout", p) { app.failTimeout = d }
        readHealth(&r, t, p, into: &app)
        app.requestTimeout = requestTimeout
        app.killGrace = killGrace
        app.dumpSignal = dumpSignal
        return app
    }

    /// Active health and name lookups of a connect app's servers.
    static func readHealth(_ r: inout ConfigReader, _ t: TOMLTable, _ p: String, into app: inout AppConfig) {
        if case .hosted = app.kind {
            for key in ["health_interval", "health_timeout", "health_path", "resolve_interval"] where t[key] != nil {
                r.fail("\(p).\(key)", "applies to connect apps; gatewayd watches its own app processes itself")
            }
            return
        }
        if let d = r.duration(t, "health_interval", p, allowZero: true) { app.healthInterval = d }
        if let d = r.duration(t, "health_timeout", p) {
            app.healthTimeout = d
        } else if app.healthInterval > 0 {
            app.healthTimeout = min(2, app.healthInterval / 2)  // a probe ends before the next is due
        }
        if let d = r.duration(t, "resolve_interval", p, allowZero: true) { app.resolveInterval = d }
        if app.healthInterval > 0 && app.healthTimeout >= app.healthInterval {
            r.fail("\(p).health_timeout", "must be shorter than health_interval (\(app.healthInterval) s), got \(app.healthTimeout) s")
        }
        if let path = r.string(t, "health_path", p) {
            if !path.hasPrefix("/") || path.contains(where: { $0 == " " || $0.isNewline }) {
                r.fail("\(p).health_path", "expected a path such as \"/health\", got \"\(path)\"")
            } else {
                app.healthPath = path
            }
        }
    }

    /// Signals an app may ask for its stack dump with (none that ends a process by default
    /// in a way the app cannot catch, and none gatewayd itself uses on its apps).
    static let dumpSignals = ["SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGHUP", "SIGWINCH", "SIGPWR", "SIGURG"]

    /// A connect app's servers: `connect` (one address or a list, each with the app's
    /// max_conns and weight 1) or `servers` (tables with address, max_conns, weight).
    /// A server without max_conns (here or on the app) starts at 8 and learns its capacity.
    static func readServers(_ r: inout ConfigReader, _ t: TOMLTable, _ p: String, connect: [String], maxConns: Int?) -> [UpstreamServer]? {
        func address(_ s: String, _ key: String) -> ConnectAddress? {
            switch ConfigValues.parseConnect(s) {
            case .success(.unix(let path)): return .unix(path: r.resolve(path))
            case .success(let a): return a
            case .failure(let e): r.fail(key, e.message); return nil
            }
        }
        var servers: [UpstreamServer] = []
        if t["connect"] != nil && t["servers"] != nil { r.fail(p, "has both connect and servers; choose one"); return nil }
        if let list = t["servers"] {
            guard let array = list.array, !array.isEmpty else { r.fail("\(p).servers", "expected a list of tables such as [{ address = \"10.0.0.5:9000\", max_conns = 8, weight = 2 }]"); return nil }
            for (i, v) in array.enumerated() {
                let key = "\(p).servers[\(i)]"
                guard let s = v.table else { r.fail(key, "expected a table such as { address = \"10.0.0.5:9000\", weight = 2 }"); continue }
                r.rejectUnknownKeys(s, path: key, allowed: ["address", "max_conns", "weight"])
                guard let text = r.string(s, "address", key) else { if s["address"] == nil { r.fail(key, "needs an address") }; continue }
                guard let a = address(text, "\(key).address") else { continue }
                let conns = r.int(s, "max_conns", key, max: 65535) ?? maxConns
                servers.append(UpstreamServer(address: a, maxConns: conns ?? 8, weight: r.int(s, "weight", key, max: 1000) ?? 1,
                                              learnsCapacity: conns == nil))
            }
        } else {
            if connect.isEmpty { r.fail("\(p).connect", "lists no server") }
            for c in connect { if let a = address(c, "\(p).connect") { servers.append(UpstreamServer(address: a, maxConns: maxConns ?? 8, learnsCapacity: maxConns == nil)) } }
        }
        for (i, s) in servers.enumerated() where servers[..<i].contains(where: { $0.address == s.address }) {
            r.fail(p, "names the server \(s.address) twice")
        }
        return servers.isEmpty ? nil : servers
    }

    /// `sendfile_roots`: directories (absolute, or relative to the file) an X-Sendfile
    /// answer may name files under. "/" would hand the app every file gatewayd can read.
    static func sendfileRoots(_ r: inout ConfigReader, _ t: TOMLTable, _ p: String) -> [String] {
        guard let list = r.stringArray(t, "sendfile_roots", p) else { return [] }
        var roots: [String] = []
        for dir in list {
            let resolved = r.resolve(dir)
            if dir.isEmpty || resolved == "/" {
                r.fail("\(p).sendfile_roots", "\"\(dir)\" would let X-Sendfile name any file on the machine; name the directories the app's files live in")
            } else {
                roots.append(resolved)
            }
        }
        return roots
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
}
