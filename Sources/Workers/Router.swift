import GatewayConfig
import CGIProtocol

/// Where a request goes, and the SCRIPT_NAME / PATH_INFO split it implies.
public struct RouteMatch: Sendable, Equatable {
    public var route: RouteConfig
    /// The route's place in the configuration: what the worker resolved for it at boot
    /// (its app, its directory) is found by this, with no lookup by name per request.
    public var index: Int = 0
    public var scriptName: String
    public var pathInfo: String
    /// SCRIPT_FILENAME when the route found the file itself (php routes); otherwise the
    /// app's root + SCRIPT_NAME.
    public var scriptFilename: String? = nil
}

/// Chooses a route like nginx: extension routes first (as its regex locations), then
/// the longest matching path prefix. A `php = true` route finds its own .php files, so
/// its prefix is tried before the extension routes (as nginx's `^~` prefixes are).
public struct Router: Sendable {
    let extensionRoutes: [(index: Int, route: RouteConfig)]
    let prefixRoutes: [(index: Int, route: RouteConfig)]  // longest prefix first
    /// Path routes with `deny` or `allow`: their rule covers every request under their
    /// prefix, whichever route serves it, so an extension route (".php") cannot reach
    /// around `path = "/inc", deny = true` (nginx needs a regex location for that).
    let accessRoutes: [RouteConfig]

    public init(routes: [RouteConfig]) {
        let numbered = routes.enumerated().map { (index: $0.offset, route: $0.element) }
        extensionRoutes = numbered.filter { if case .extension = $0.route.match { return true }; return false }
        prefixRoutes = numbered.compactMap { r -> (Int, (index: Int, route: RouteConfig))? in
            if case .path(let p) = r.route.match { return (p.count, r) }
            return nil
        }.sorted { $0.0 > $1.0 }.map(\.1)
        accessRoutes = prefixRoutes.map(\.route).filter { $0.deny || !$0.allow.isEmpty }
    }

    /// The access rules (deny, allow) that cover `path`, besides its own route's.
    public func accessRules(_ path: String) -> [RouteConfig] {
        accessRoutes.filter { r in
            if case .path(let prefix) = r.match { return CGIPath.splitAtMount(path, prefix: prefix) != nil }
            return false
        }
    }

    /// `path` is the decoded, normalised request path.
    public func match(_ path: String) -> RouteMatch? {
        for (i, r) in prefixRoutes where r.php {
            if case .path(let prefix) = r.match, let split = CGIPath.splitAtMount(path, prefix: prefix) {
                return RouteMatch(route: r, index: i, scriptName: split.scriptName, pathInfo: split.pathInfo)
            }
        }
        for (i, r) in extensionRoutes {
            if case .extension(let ext) = r.match, let split = CGIPath.splitAtExtension(path, ext) {
                return RouteMatch(route: r, index: i, scriptName: split.scriptName, pathInfo: split.pathInfo)
            }
        }
        for (i, r) in prefixRoutes {
            if case .path(let prefix) = r.match, let split = CGIPath.splitAtMount(path, prefix: prefix) {
                return RouteMatch(route: r, index: i, scriptName: split.scriptName, pathInfo: split.pathInfo)
            }
        }
        return nil
    }
}
