import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import Observability
import Exchanges

/// Where a request goes, decided the same way by every worker class.
indirect enum Destination {
    /// The status page (server.status_path) or Prometheus metrics (server.metrics_path).
    case page(Page)
    /// A FastCGI app, by its index in the configuration and the slot table (a copy of its
    /// AppConfig per request was two dozen retains and releases).
    case app(index: Int, match: RouteMatch)
    /// A CGI program to run.
    case cgi(CGIScript)
    /// A static file, opened (it closes when the last holder lets go).
    case staticFile(StaticFile)
    /// Answer with this status (and headers) without going anywhere.
    case refuse(Int, [(String, String)])

    enum Page { case status, metrics }
}

extension WorkerContext {
    /// What `OPTIONS *` answers: the methods the server as a whole takes (RFC 9110 §9.3.7).
    static let serverMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

    /// Routes `target` (the request's own target, or a local redirect's) for a client at
    /// `client` (the address the access log shows: after PROXY and trusted proxies).
    /// `label` gets the route label /metrics counts the request under (the route's path or
    /// extension, "status", "metrics", "unrouted" or "invalid"), from this same routing:
    /// the access log does not route the request a second time.
    /// `gzip` gets the matched route's gzip setting.
    func destination(method: String, target: String, client: String, label: inout String, gzip: inout GzipPolicy?) -> Destination {
        label = "invalid"
        if target == "*" {  // the parser lets the asterisk-form through for OPTIONS only
            return .refuse(200, [("Allow", Self.serverMethods)])
        }
        guard let path = Self.requestPath(target) else { return .refuse(400, []) }
        if path == config.server.statusPath || path == config.server.metricsPath {
            label = path == config.server.statusPath ? "status" : "metrics"
            guard isAllowed(client, config.server.statusAllow) else {
                logger.info("\(path) refused to \(client): not in server.status_allow; answering 403")
                return .refuse(403, [])
            }
            guard method == "GET" || method == "HEAD" else { return .refuse(405, [("Allow", "GET, HEAD")]) }
            return .page(path == config.server.statusPath ? .status : .metrics)
        }
        // deny/allow of every path route above this path, then of the route itself (an
        // extension route has its own). No allocation when no route has either.
        let found = router.match(path)
        label = found.map { Self.label(of: $0.route) } ?? "unrouted"
        gzip = found?.route.gzip
        if found?.route.internalOnly == true { return .refuse(404, []) }  // only an app's X-Accel-Redirect goes there
        for r in router.accessRules(path) { if let refused = accessRefusal(path, r, client) { return refused } }
        guard let match = found else { return .refuse(404, []) }
        if let refused = accessRefusal(path, match.route, client) { return refused }
        switch match.route.target {
        case .deny:
            return .refuse(403, [])
        case .app(let name):
            guard let (app, index) = routeApps[match.index], app.name == name else { return .refuse(500, []) }
            if match.route.php { return phpDestination(method: method, path: path, target: target, app: app, index: index, match: match) }
            // An extension route with a root runs only a script that exists: php-cgi's
            // cgi.fix_pathinfo would otherwise run "/uploads/a.jpg" for "/uploads/a.jpg/x.php".
            if case .extension = match.route.match, let root = app.root {
                guard let tree = documentTree(route: match.index), case .file(let file) = tree.walk(Substring(match.scriptName)) else {
                    logger.info("\(path): \(match.scriptName) is not a file under \(root); answering 404")
                    return .refuse(404, [])
                }
                var m = match
                m.scriptFilename = file
                return .app(index: index, match: m)
            }
            return .app(index: index, match: match)
        case .cgi(let base):
            var mount = "/"
            if case .path(let p) = match.route.match { mount = p }
            do throws(CGIScripts.Refusal) {
                return .cgi(try cgiScripts.resolve(path: path, rawPath: Self.rawPath(target), route: match.route, base: base, mount: mount))
            } catch {
                logger.info("CGI \(path): \(error.why); answering \(error.status)")
                return .refuse(error.status, [])
            }
        case .static:
            guard method == "GET" || method == "HEAD" else { return .refuse(405, [("Allow", "GET, HEAD")]) }
            var mount = "/"
            if case .path(let p) = match.route.match { mount = p }
            guard let tree = documentTree(route: match.index), let split = CGIPath.splitAtMount(path, prefix: mount) else { return .refuse(404, []) }
            var found = tree.lookup(Substring(split.pathInfo), index: match.route.index)
            if match.route.gzipStatic, case .file(var f) = found {
                // nginx's gzip_static: the compressed twin, if there is one (not for an index file).
                f.varies = true
                if !split.pathInfo.hasSuffix("/"), case .file(let gz) = tree.lookup(Substring(split.pathInfo + ".gz"), index: []) {
                    f.gzipped = (gz.file, gz.status)
                }
                found = .file(f)
            }
            return staticDestination(found, path: path, target: target)
        }
    }

    /// The page exchange: the status page or /metrics, made whole (its status is 200).
    /// Both families send what this gives.
    func page(_ p: Destination.Page, method: String, target: String, keepAlive: Bool) -> [UInt8] {
        switch p {
        case .status:
            return StatusPage.response(view, query: Self.query(target) ?? "", method: method, keepAlive: keepAlive, date: httpDate())
        case .metrics:
            return Metrics.response(view, method: method, keepAlive: keepAlive, date: httpDate())
        }
    }

    /// 403 when the route's `deny` or `allow` refuses this client; nil when it may pass.
    func accessRefusal(_ path: String, _ r: RouteConfig, _ client: String) -> Destination? {
        if r.deny { return .refuse(403, []) }
        guard r.allow.isEmpty || isAllowed(client, r.allow) else {
            logger.info("\(path) refused to \(client): not in the route's allow list; answering 403")
            return .refuse(403, [])
        }
        return nil
    }

    func staticDestination(_ lookup: StaticLookup, path: String, target: String) -> Destination {
        switch lookup {
        case .file(let f): return .staticFile(f)
        case .directoryWithoutSlash: return Self.slashRedirect(path: path, target: target)
        case .refuse(let status, let why):
            logger.info("static \(path): \(why); answering \(status)")
            return .refuse(status, [])
        }
    }

    /// A `php = true` route: nginx's usual PHP set-up (try_files $uri $uri/ /index.php;
    /// a .php location with try_files $uri =404) as one setting. The app's root serves
    /// the paths below the route's prefix, as a static route's directory does. Files are
    /// served as they are, except .php files, which run; a path naming nothing runs the
    /// front controller. A path with a .php segment that is not an existing regular file
    /// is a 404: "/uploads/a.jpg/x.php" never runs a.jpg.
    func phpDestination(method: String, path: String, target: String, app: AppConfig, index: Int, match: RouteMatch) -> Destination {
        var mount = "/"
        if case .path(let p) = match.route.match { mount = p }
        guard let tree = documentTree(route: match.index), let (prefix, rel) = CGIPath.splitAtMount(path, prefix: mount) else { return .refuse(500, []) }
        let route = match.route
        func run(_ script: String, _ pathInfo: String, _ file: String) -> Destination {
            .app(index: index, match: RouteMatch(route: route, index: match.index, scriptName: prefix + script, pathInfo: pathInfo, scriptFilename: file))
        }
        func serve(_ file: String) -> Destination {
            guard method == "GET" || method == "HEAD" else { return .refuse(405, [("Allow", "GET, HEAD")]) }
            return staticDestination(tree.open(file), path: path, target: target)
        }
        if let split = CGIPath.splitAtExtension(rel, ".php") {
            guard case .file(let file) = tree.walk(Substring(split.scriptName)) else {
                logger.info("php \(path): \(split.scriptName) is not a PHP file under \(tree.root); answering 404")
                return .refuse(404, [])
            }
            return run(split.scriptName, split.pathInfo, file)
        }
        let relative = rel.isEmpty ? "/" : rel
        switch tree.walk(Substring(relative)) {
        case .file(let file):
            // A ".PHP" or ".php5" file is neither run nor shown as source.
            guard !(file.split(separator: "/").last ?? "").lowercased().contains(".php") else { return .refuse(404, []) }
            return serve(file)
        case .directory:
            guard path.hasSuffix("/") else { return Self.slashRedirect(path: path, target: target) }
            for name in route.index {
                guard case .file(let file) = tree.walk(Substring(relative + name)) else { continue }
                return name.hasSuffix(".php") ? run(relative + name, "", file) : serve(file)
            }
            return .refuse(404, [])
        case .refused(let status, let why):
            logger.info("php \(path): \(why); answering \(status)")
            return .refuse(status, [])
        case .missing:
            let front = "/" + (route.index.first { $0.hasSuffix(".php") } ?? "index.php")
            guard case .file(let file) = tree.walk(Substring(front)) else {
                logger.info("php \(path): no such file and no front controller \(front) under \(tree.root); answering 404")
                return .refuse(404, [])
            }
            return run(front, "", file)
        }
    }

    /// A directory named without its trailing slash: a 301 to it, the query kept, so the
    /// browser resolves relative links inside it. Location is made from the normalised
    /// path, percent-encoded, never from the raw target: "//evil.example/../sub" would
    /// otherwise send the browser to another host (an open redirect). A normalised path
    /// has no "//", and "\\" is encoded, so Location never starts with "//" or "/\\".
    static func slashRedirect(path: String, target: String) -> Destination {
        .refuse(301, [("Location", CGIPath.percentEncodePath(path) + "/" + (query(target).map { "?" + $0 } ?? ""))])
    }

    /// The query part of a target, as sent; nil when there is none.
    static func query(_ target: String) -> Substring? {
        target.firstIndex(of: "?").map { target[target.index(after: $0)...] }
    }

    /// The path part of a target, as sent (still percent-encoded).
    static func rawPath(_ target: String) -> Substring {
        var t = Substring(target)
        if !t.hasPrefix("/"), let scheme = t.range(of: "://") {
            let afterAuthority = t[scheme.upperBound...]
            t = afterAuthority.firstIndex(of: "/").map { afterAuthority[$0...] } ?? "/"
        }
        if let q = t.firstIndex(of: "?") { t = t[..<q] }
        return t
    }

    /// The decoded, normalised path of a target: origin-form as is, absolute-form from its
    /// path part. Nil for asterisk and authority forms, and for bad encodings or "..".
    static func requestPath(_ target: String) -> String? {
        var t = Substring(target)
        if !t.hasPrefix("/") {
            guard let scheme = t.range(of: "://") else { return nil }
            let afterAuthority = t[scheme.upperBound...]
            t = afterAuthority.firstIndex(of: "/").map { afterAuthority[$0...] } ?? "/"
        }
        if let q = t.utf8.firstIndex(of: UInt8(ascii: "?")) { t = t[..<q] }  // (bytes: Character search showed in profiles)
        return try? CGIPath.clean(t)
    }

    /// One access-log line.
    /// `label`: the request's route label from its routing (nil: found from `target`).
    /// Routes a request's current target (its own, or a local redirect's) for the client
    /// at `peer`, in every class; the first routing gives the request its /metrics label.
    func route(_ r: RequestRecord, peer: (address: String, port: Int)) -> Destination {
        var label = ""
        var gzip: GzipPolicy? = nil
        let found = destination(method: r.head.method, target: r.target, client: clientPeer(peer, head: r.head).address, label: &label, gzip: &gzip)
        if r.label == nil { r.label = label }
        r.gzip = gzip.map { GzipChoice(policy: $0, accepted: GzipPolicy.clientAccepts(r.head)) }
        return found
    }

    /// A page (status, metrics) or a static file is answered here, for every worker
    /// class: queued on the client's output, which the session's flush step writes (a
    /// client that leaves first is logged with what it got). nil for any other destination.
    func answer(_ d: Destination, for r: RequestRecord, into out: inout ClientOutput) -> (status: Int, bytes: Int)? {
        switch d {
        case .page(let p):
            let bytes = page(p, method: r.head.method, target: r.target, keepAlive: r.responseKeepAlive)
            out.queue(bytes[...])
            return (200, bytes.count)
        case .staticFile(var file):
            // (One test of the client for gzip_static and gzip: as nginx's, HTTP/1.1 or later.)
            if let gz = file.gzipped, GzipPolicy.clientAccepts(r.head) {
                var twin = StaticFile(file: gz.file, status: gz.status, name: file.name)
                twin.varies = true
                twin.gzipCoded = true
                file = twin
            }
            let reply = StaticResponse.make(request: r.head, file: file, keepAlive: r.responseKeepAlive, date: httpDate(), offload: r.offload,
                                            gzip: r.gzip)
            out.queue(reply.head[...])
            if let body = reply.body { out.queueFile(file.file, offset: body.offset, length: body.length, gzip: reply.gzip) }
            return (reply.status, reply.head.count + Int(reply.body?.length ?? 0))
        default:
            return nil
        }
    }

    /// Every CGI place of the worker stayed busy for cgi.queue_timeout: 503, in every class.
    func cgiPlacesBusy(_ meta: @autoclosure () -> Logger.Metadata) -> ExchangeEnd {
        let cgi = config.cgi
        log([CGINotes.placesBusy(cgi.maxProcesses, queueTimeout: cgi.queueTimeout)], meta())
        return .failed(503, [("Retry-After", UpstreamPolicy.retryAfter(cgi.queueTimeout))])
    }

    /// The access-log line and the metrics of a finished request, for every worker class.
    func logAccess(_ r: RequestRecord, remote: String) {
        guard accessLog != nil || config.server.metricsPath != nil else { return }
        let elapsed = Host.monotonicSeconds() - r.started
        recordMetrics(label: r.label ?? routeLabel(r.head.target), status: r.loggedStatus, seconds: elapsed)
        guard let accessLog else { return }
        let client = config.server.forwardedAllowIPs.isEmpty ? remote : clientPeer((remote, 0), head: r.head).address
        accessLog.write(AccessLog.Entry(
            remote: client.isEmpty ? "unix:" : client, method: r.head.method, target: r.head.target,
            version: r.logVersion ?? r.head.version.description, status: r.loggedStatus, bytesSent: r.bytesSent,
            referer: r.head.headers.first("Referer"), userAgent: r.head.headers.first("User-Agent"), requestTime: elapsed,
            upstreamTime: r.upstreamTime, requestID: r.id.description))
    }
}
