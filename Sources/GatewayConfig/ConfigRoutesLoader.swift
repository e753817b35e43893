import HTTPWire
import TOMLKit

/// [[route]] sections, and the checks that need apps and routes together.
extension ConfigLoader {
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
        var internalOnly = false
        if let v = t["internal"] {
            if let b = v.bool { internalOnly = b } else { r.fail("\(p).internal", "expected true or false, got \(r.describe(v))") }
            if internalOnly, case .static? = target {} else if internalOnly {
                r.fail("\(p).internal", "applies to static routes only (the files an app's X-Accel-Redirect names)")
            }
            if internalOnly, case .extension? = match { r.fail("\(p).internal", "needs a path route (such as path = \"/protected\")") }
        }
        var gzipStatic = false
        if let v = t["gzip_static"] {
            if let b = v.bool { gzipStatic = b } else { r.fail("\(p).gzip_static", "expected true or false, got \(r.describe(v))") }
            if gzipStatic, case .static? = target {} else if gzipStatic { r.fail("\(p).gzip_static", "applies to static routes only") }
        }
        let gzip = gzipPolicy(&r, t, p, target: target)
        guard r.issues.count == before, let match, let target else { return nil }
        var route = RouteConfig(match: match, target: target, env: env, allowSymlinks: allowSymlinks, index: index, php: php,
                                deny: deny, allow: allow, internalOnly: internalOnly)
        route.gzipStatic = gzipStatic
        route.gzip = gzip
        return route
    }

    /// `gzip = true` and its settings, with nginx's defaults (gzip_types text/html,
    /// gzip_min_length 20, gzip_comp_level 1). nil: the route does not compress.
    static func gzipPolicy(_ r: inout ConfigReader, _ t: TOMLTable, _ p: String, target: RouteConfig.Target?) -> GzipPolicy? {
        var on = false
        if let v = t["gzip"] {
            if let b = v.bool { on = b } else { r.fail("\(p).gzip", "expected true or false, got \(r.describe(v))") }
            if on, target == .deny { r.fail("\(p).gzip", "a deny route sends nothing to compress") }
        }
        let types = r.stringArray(t, "gzip_types", p, allowSingle: true)
        if let types, let bad = types.first(where: { $0 != "*" && !Self.isMediaType($0) }) {
            r.fail("\(p).gzip_types", "expected media types such as \"application/json\" (or \"*\"), got \"\(bad)\"")
        }
        let minLength = t["gzip_min_length"]?.int == 0 ? 0 : r.size(t, "gzip_min_length", p)  // 0: every length
        let level = r.int(t, "gzip_comp_level", p, min: 1, max: 9)
        if !on {
            for key in ["gzip_types", "gzip_min_length", "gzip_comp_level"] where t[key] != nil {
                r.fail("\(p).\(key)", "has no effect without gzip = true")
            }
            return nil
        }
        let d = GzipPolicy()
        return GzipPolicy(types: types ?? d.types, minLength: minLength ?? d.minLength, level: level ?? d.level)
    }

    /// type/subtype, each a token (no parameters).
    static func isMediaType(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        let token: (Substring) -> Bool = { !$0.isEmpty && $0.allSatisfy { c in c.isASCII && (c.isLetter || c.isNumber || "!#$&-^_.+".contains(c)) } }
        return parts.count == 2 && token(parts[0]) && token(parts[1])
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
