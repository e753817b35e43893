import CGIProtocol
import Exchanges
import GatewayConfig

/// Where an app's X-Accel-Redirect or X-Sendfile leads, in every worker class: a file of
/// a static route marked `internal`, or a file under the app's `sendfile_roots`. Anything
/// else is a mistake of the app's (or an attack through it): a 502 and a log line, never
/// a file. The file is then sent like any static file (sendfile, Range, conditionals).
extension WorkerContext {
    func offloadDestination(_ o: Offload, for r: WorkerRequest) -> Destination {
        switch o.target {
        case .uri(let uri):
            return accelDestination(uri)
        case .file(let file):
            // A CGI program's are [cgi]'s roots (the last entry); an app's, its own.
            let roots = r.cgi != nil ? sendfileTrees[sendfileTrees.count - 1] : sendfileTrees[r.appIndex]
            return sendfileDestination(file, roots: roots, app: r.cgi != nil ? "[cgi]" : config.apps[r.appIndex].name)
        }
    }

    /// X-Accel-Redirect: a URI (percent-encoded, as nginx takes it) that must fall under a
    /// route marked internal. A ".." segment is refused, not resolved.
    func accelDestination(_ uri: String) -> Destination {
        let refused = { (why: String) -> Destination in
            self.logger.error("X-Accel-Redirect \(uri): \(why); answering 502")
            return .refuse(502, [])
        }
        guard uri.hasPrefix("/"), let decoded = try? CGIPath.percentDecode(Self.rawPath(uri)) else { return refused("not a path") }
        guard !Self.hasDotDotSegment(decoded), let path = try? CGIPath.normalize(decoded) else { return refused("a \"..\" segment") }
        guard let (index, mount) = internalRoute(path), let tree = documentTree(route: index),
              let split = CGIPath.splitAtMount(path, prefix: mount) else {
            return refused("not under a route marked internal = true")
        }
        return staticDestination(tree.lookup(Substring(split.pathInfo), index: config.routes[index].index), path: path, target: path)
    }

    /// X-Sendfile: an absolute file path (not a URI: no decoding) under one of `roots`.
    func sendfileDestination(_ file: String, roots: [DocumentTree], app: String) -> Destination {
        let refused = { (why: String) -> Destination in
            self.logger.error("X-Sendfile \(file): \(why); answering 502")
            return .refuse(502, [])
        }
        guard !roots.isEmpty else { return refused("\(app) has no sendfile_roots") }
        guard file.hasPrefix("/"), !Self.hasDotDotSegment(file), !file.utf8.contains(0), let path = try? CGIPath.normalize(file) else {
            return refused("not an absolute path without \"..\"")
        }
        for tree in roots {
            guard let split = CGIPath.splitAtMount(path, prefix: tree.root), !split.pathInfo.isEmpty else { continue }
            return staticDestination(tree.lookup(Substring(split.pathInfo), index: []), path: path, target: path)
        }
        return refused("not under \(app)'s sendfile_roots (\(roots.map(\.root).joined(separator: ", ")))")
    }

    /// The internal route with the longest prefix that covers `path`.
    func internalRoute(_ path: String) -> (index: Int, mount: String)? {
        var best: (index: Int, mount: String)? = nil
        for (i, r) in config.routes.enumerated() where r.internalOnly {
            guard case .path(let mount) = r.match, CGIPath.splitAtMount(path, prefix: mount) != nil else { continue }
            if best == nil || mount.utf8.count > best!.mount.utf8.count { best = (i, mount) }
        }
        return best
    }

    static func hasDotDotSegment(_ path: String) -> Bool {
        path.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }
}
