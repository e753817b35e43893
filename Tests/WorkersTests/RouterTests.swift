import Testing
import GatewayConfig
import CGIProtocol
@testable import Workers

@Suite("routing")
struct RouterTests {
    let router = Router(routes: [
        RouteConfig(match: .path("/"), target: .static("/srv/www"), env: [:]),
        RouteConfig(match: .path("/api"), target: .app("api"), env: [:]),
        RouteConfig(match: .path("/api/v2"), target: .app("api2"), env: [:]),
        RouteConfig(match: .extension(".php"), target: .app("php"), env: [:]),
        RouteConfig(match: .path("/site"), target: .app("site"), php: true),
    ])

    @Test("php routes, then extension routes, then the longest prefix", arguments: [
        ("/index.php", "php", "/index.php", ""),
        ("/api/x.php/y", "php", "/api/x.php", "/y"),
        ("/api/users", "api", "/api", "/users"),
        ("/api", "api", "/api", ""),
        ("/api/v2/users", "api2", "/api/v2", "/users"),
        ("/apix", "/srv/www", "", "/apix"),
        ("/", "/srv/www", "", "/"),
        ("/site/info.php/x", "site", "/site", "/info.php/x"),
        ("/sitex/a.php", "php", "/sitex/a.php", ""),
    ])
    func routes(path: String, target: String, scriptName: String, pathInfo: String) throws {
        let m = try #require(router.match(path))
        switch m.route.target {
        case .app(let a): #expect(a == target)
        case .static(let d): #expect(d == target)
        case .cgi, .deny: Issue.record("unexpected route \(m.route.target)")
        }
        #expect(m.scriptName == scriptName)
        #expect(m.pathInfo == pathInfo)
        // The index is the route's place in the configuration (what was resolved at boot).
        let numbered = router.prefixRoutes + router.extensionRoutes
        #expect(numbered.first { $0.index == m.index }?.route == m.route)
    }

    @Test func aMatchCarriesItsRoutesPlaceInTheConfiguration() {
        #expect(router.match("/api/v2/x")?.index == 2)
        #expect(router.match("/a.php")?.index == 3)
        #expect(router.match("/x")?.index == 0)
    }

    @Test("deny and allow cover every path below their prefix, whichever route serves it")
    func accessRules() {
        let r = Router(routes: [
            RouteConfig(match: .extension(".php"), target: .app("php")),
            RouteConfig(match: .path("/inc"), target: .deny),
            RouteConfig(match: .path("/admin"), target: .static("/srv/admin"), allow: [IPRange("10.0.0.0/8")!]),
            RouteConfig(match: .path("/"), target: .static("/srv/www")),
        ])
        #expect(r.match("/inc/preload.php")?.route.target == .app("php"), "the extension route serves it...")
        #expect(r.accessRules("/inc/preload.php").map(\.deny) == [true], "...but /inc's rule covers it")
        #expect(r.accessRules("/admin/x.php").first?.allow.map(\.description) == ["10.0.0.0/8"])
        #expect(r.accessRules("/income").isEmpty && r.accessRules("/").isEmpty, "segment boundaries")
    }

    @Test("Location paths are percent-encoded: never //host or /\\host")
    func locationEncoding() {
        #expect(CGIPath.percentEncodePath("/a b/%/?#\\x/é") == "/a%20b/%25/%3F%23%5Cx/%C3%A9")
        #expect(CGIPath.percentEncodePath("/sub-dir_~.!$&'()*+,;=:@") == "/sub-dir_~.!$&'()*+,;=:@")
    }

    @Test func noRoute() {
        #expect(Router(routes: [RouteConfig(match: .path("/api"), target: .app("a"), env: [:])]).match("/other") == nil)
    }

    @Test("request targets to paths", arguments: [
        ("/a/b?x=1", "/a/b" as String?), ("/a/%2e%2e/b", "/b"), ("http://example.com/x/y?z", "/x/y"),
        ("http://example.com", "/"), ("*", nil), ("example.com:443", nil), ("/../etc/passwd", nil), ("/a%00b", nil),
    ])
    func requestPath(target: String, path: String?) {
        #expect(WorkerContext.requestPath(target) == path)
    }
}
