/// Prints a configuration as TOML with every default filled in (`gatewayd check`).
/// The output loads back to the same configuration.
extension Configuration {
    public func renderTOML() -> String {
        var out: [String] = ["# effective configuration of \(sourcePath), defaults included"]
        func kv(_ k: String, _ v: String) { out.append("\(k) = \(v)") }
        func q(_ s: String) -> String { Self.quote(s) }
        func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        func list(_ a: [String]) -> String { "[" + a.map(q).joined(separator: ", ") + "]" }
        func table(_ d: [String: String]) -> String {
            "{ " + d.keys.sorted().map { "\($0) = \(q(d[$0]!))" }.joined(separator: ", ") + " }"
        }

        out.append("\n[server]")
        kv("bind", list(server.bind.map(\.description)))
        kv("workers", String(server.workers))
        kv("worker_class", q(server.workerClass.rawValue))
        kv("threads", String(server.threads))
        kv("worker_connections", String(server.workerConnections))
        kv("open_file_cache", String(server.openFileCache))
        kv("open_file_cache_valid", num(server.openFileCacheValid))
        kv("timeout", num(server.timeout))
        kv("graceful_timeout", num(server.gracefulTimeout))
        kv("keepalive", num(server.keepalive))
        kv("max_requests", String(server.maxRequests))
        kv("max_requests_jitter", String(server.maxRequestsJitter))
        kv("backlog", String(server.backlog))
        kv("tls_ticket_rotation", num(server.tlsTicketRotation))
        kv("http2", server.http2 ? "true" : "false")
        kv("h2c", server.h2c ? "true" : "false")
        kv("unix_socket_mode", q("0" + String(server.unixSocketMode, radix: 8)))
        if let p = server.pidfile { kv("pidfile", q(p)) } else { out.append("# pidfile: none") }
        if let c = server.controlSocket { kv("control_socket", q(c)) }
        if let u = server.user { kv("user", q(u)) }
        if let g = server.group { kv("group", q(g)) }
        if let n = server.serverName { kv("server_name", q(n)) } else { out.append("# server_name: the request's host") }
        if let m = server.metricsPath { kv("metrics_path", q(m)) } else { out.append("# metrics_path: off") }
        kv("forwarded_allow_ips", list(server.forwardedAllowIPs.map(\.description)))
        kv("proxy_protocol", list(server.proxyProtocol.map(\.description)))
        kv("forwarded_header", q(server.forwardedHeader.rawValue))
        kv("status_allow", list(server.statusAllow.map(\.description)))
        if let sp = server.statusPath { kv("status_path", q(sp)) } else { out.append("# status_path: none (the status page is off)") }

        out.append("\n[limits]")
        kv("max_request_line", String(limits.maxRequestLine))
        kv("max_header_count", String(limits.maxHeaderCount))
        kv("max_header_field_size", String(limits.maxHeaderFieldSize))
        kv("max_head_size", String(limits.maxHeadSize))
        kv("max_chunk_extension", String(limits.maxChunkExtension))
        kv("max_body_size", String(limits.maxBodySize))
        kv("max_response_head", String(limits.maxResponseHead))

        out.append("\n[timeouts]")
        kv("header", num(timeouts.header))
        kv("body", num(timeouts.body))
        kv("body_total", num(timeouts.bodyTotal))
        kv("send", num(timeouts.send))
        kv("backend_connect", num(timeouts.backendConnect))
        kv("backend_read", num(timeouts.backendRead))

        out.append("\n[cgi]")
        kv("max_processes", String(cgi.maxProcesses))
        kv("queue_timeout", num(cgi.queueTimeout))
        kv("timeout", num(cgi.timeout))
        kv("kill_grace", num(cgi.killGrace))
        if !cgi.sendfileRoots.isEmpty { kv("sendfile_roots", list(cgi.sendfileRoots)) }
        // Extension keys start with "." and must be quoted.
        kv("interpreters", "{ " + cgi.interpreters.keys.sorted().map { "\(q($0)) = \(q(cgi.interpreters[$0]!))" }.joined(separator: ", ") + " }")

        out.append("\n[log]")
        kv("level", q(log.level))
        kv("error_log", q(log.errorLog))
        kv("access_log", q(log.accessLog))
        kv("access_log_format", q(log.accessLogFormat.rawValue))

        for a in apps {
            out.append("\n[[app]]")
            kv("name", q(a.name))
            switch a.kind {
            case .hosted(let command, let pm):
                kv("command", list(command))
                kv("pm", q(pm.mode.rawValue))
                kv("processes", String(pm.maxProcesses))
                if pm.mode == .dynamic {
                    kv("min_spare", String(pm.minSpare))
                    kv("max_spare", String(pm.maxSpare))
                }
                if pm.mode != .static { kv("idle_timeout", num(pm.idleTimeout)) }
            case .external(let servers):
                // A server that learns its capacity has no max_conns (it starts at 8).
                let tables = servers.map { s in
                    "{ address = \(q(s.address.description)), " + (s.learnsCapacity ? "" : "max_conns = \(s.maxConns), ") + "weight = \(s.weight) }"
                }
                kv("servers", "[" + tables.joined(separator: ", ") + "]")
                kv("max_fails", String(a.maxFails))
                kv("fail_timeout", num(a.failTimeout))
                kv("health_interval", num(a.healthInterval))
                kv("health_timeout", num(a.healthTimeout))
                if let p = a.healthPath { kv("health_path", q(p)) }
                kv("resolve_interval", num(a.resolveInterval))
            }
            kv("queue_timeout", num(a.queueTimeout))
            if !a.env.isEmpty { kv("env", table(a.env)) }
            if !a.envCopy.isEmpty { kv("env_copy", list(a.envCopy)) }
            if let r = a.root { kv("root", q(r)) }
            if let c = a.cwd { kv("cwd", q(c)) }
            if let u = a.user { kv("user", q(u)) }
            if let g = a.group { kv("group", q(g)) }
            kv("max_requests", String(a.maxRequests))
            kv("keep_conn", a.keepConnection ? "true" : "false")
            kv("slow_request", num(a.slowRequest))
            if !a.sendfileRoots.isEmpty { kv("sendfile_roots", list(a.sendfileRoots)) }
            kv("request_timeout", num(a.requestTimeout))
            if case .hosted = a.kind {
                kv("kill_grace", num(a.killGrace))
                if let s = a.dumpSignal { kv("dump_signal", q(s)) }
            }
        }
        for r in routes {
            out.append("\n[[route]]")
            switch r.match {
            case .path(let p): kv("path", q(p))
            case .extension(let e): kv("extension", q(e))
            }
            switch r.target {
            case .app(let a): kv("app", q(a))
            case .cgi(let d): kv("cgi", q(d))
            case .static(let d): kv("static", q(d))
            case .deny: break
            }
            if r.deny { kv("deny", "true") }
            if !r.allow.isEmpty { kv("allow", list(r.allow.map(\.description))) }
            if !r.env.isEmpty { kv("env", table(r.env)) }
            if r.allowSymlinks { kv("allow_symlinks", "true") }
            if r.php { kv("php", "true") }
            if r.internalOnly { kv("internal", "true") }
            if r.gzipStatic { kv("gzip_static", "true") }
            if let g = r.gzip {
                kv("gzip", "true")
                kv("gzip_types", list(g.types))
                kv("gzip_min_length", "\(g.minLength)")
                kv("gzip_comp_level", "\(g.level)")
            }
            if r.index != RouteConfig(match: r.match, target: r.target, php: r.php).index { kv("index", list(r.index)) }
        }
        for t in tls {
            out.append("\n[[tls]]")
            kv("bind", q(t.bind.description))
            kv("cert", q(t.cert))
            kv("key", q(t.key))
            if let c = t.ciphers { kv("ciphers", q(c)) }
            if let o = t.ocsp { kv("ocsp", q(o)) }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// A TOML basic string.
    static func quote(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\t": o += "\\t"
            case "\r": o += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    let h = String(u.value, radix: 16, uppercase: true)
                    o += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    o.unicodeScalars.append(u)
                }
            }
        }
        return o + "\""
    }
}
