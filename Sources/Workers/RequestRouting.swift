import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging

/// Where a request goes, decided the same way by every worker class.
enum Destination {
    /// The status page (server.status_path).
    case statusPage
    /// A FastCGI app, by its configuration and its index in the slot table.
    case app(AppConfig, index: Int, match: RouteMatch)
    /// A CGI program to run.
    case cgi(CGIScript)
    /// Answer with this status (and headers) without going anywhere.
    case refuse(Int, [(String, String)])
}

extension WorkerContext {
    /// Routes `target` (the request's own target, or a local redirect's).
    func destination(method: String, target: String) -> Destination {
        if let statusPath = config.server.statusPath, Self.requestPath(target) == statusPath {
            guard method == "GET" || method == "HEAD" else { return .refuse(405, [("Allow", "GET, HEAD")]) }
            return .statusPage
        }
        guard let path = Self.requestPath(target) else { return .refuse(400, []) }
        guard let match = router.match(path) else { return .refuse(404, []) }
        switch match.route.target {
        case .app(let name):
            guard let app = config.app(named: name), let index = appIndex(name) else { return .refuse(500, []) }
            return .app(app, index: index, match: match)
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
            logger.warning("route for \(path) is a static route; static files are not served by this version yet")
            return .refuse(501, [])
        }
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
        if let q = t.firstIndex(of: "?") { t = t[..<q] }
        return try? CGIPath.clean(t)
    }

    /// One access-log line.
    func logAccess(remote: String, method: String, target: String, version: String, status: Int, bytes: Int,
                   started: Double, upstream: Double?, rid: String, head: HTTPRequestHead?) {
        accessLog?.write(AccessLog.Entry(
            remote: remote.isEmpty ? "unix:" : remote, method: method, target: target,
            version: version, status: status, bytesSent: bytes, referer: head?.headers.first("Referer"),
            userAgent: head?.headers.first("User-Agent"), requestTime: Host.monotonicSeconds() - started,
            upstreamTime: upstream, requestID: rid))
    }
}
