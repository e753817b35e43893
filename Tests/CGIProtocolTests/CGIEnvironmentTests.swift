import Testing
import HTTPWire
@testable import CGIProtocol

func head(_ raw: String) throws -> HTTPRequestHead {
    var p = HTTPRequestParser()
    let step = try p.parse(Array(raw.utf8)[...])
    guard case .head(let h)? = step.event else { throw HTTPParseError(400, "no head") }
    return h
}

func env(_ raw: String, scriptName: String = "/app", pathInfo: String = "", contentLength: UInt64? = nil,
         extra: [(String, String)] = [], https: Bool = false) throws -> [String: String] {
    let h = try head(raw)
    let ctx = CGIRequestContext(scriptName: scriptName, pathInfo: pathInfo, documentRoot: "/srv/www",
                                scriptFilename: "/srv/www/app", contentLength: contentLength,
                                remoteAddress: "127.0.0.1", remotePort: 50000, serverName: "example.com",
                                serverPort: 8080, https: https, extra: extra)
    let vars = CGIEnvironment.build(head: h, context: ctx)
    #expect(Set(vars.map(\.name)).count == vars.count, "no variable appears twice")
    return Dictionary(uniqueKeysWithValues: vars.map { ($0.name, $0.value) })
}

@Suite("CGI meta-variables")
struct CGIEnvironmentTests {
    @Test("absolute-form: the target's authority is the host, REQUEST_URI the origin form (RFC 9112 §3.2.2)")
    func absoluteForm() throws {
        let e = try env("GET http://other.example:81/app/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", pathInfo: "/x")
        #expect(e["HTTP_HOST"] == "other.example:81")
        #expect(e["REQUEST_URI"] == "/app/x?q=1")
        #expect(e["QUERY_STRING"] == "q=1")
        let bare = try env("GET http://other.example HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(bare["HTTP_HOST"] == "other.example" && bare["REQUEST_URI"] == "/")
        let q = try env("GET http://h?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(q["REQUEST_URI"] == "/?x=1")
        #expect(try head("GET http://other.example/x HTTP/1.1\r\nHost: a\r\n\r\n").host == "other.example")
        // Origin-form: Host as sent.
        #expect(try env("GET /app HTTP/1.1\r\nHost: a:8\r\n\r\n")["HTTP_HOST"] == "a:8")
    }

    @Test func serverVariables() throws {
        let e = try env("POST /app/x?a=1&b=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n",
                        pathInfo: "/x", contentLength: 3)
        #expect(e["GATEWAY_INTERFACE"] == "CGI/1.1")
        #expect(e["SERVER_PROTOCOL"] == "HTTP/1.1")
        #expect(e["SERVER_NAME"] == "example.com")
        #expect(e["SERVER_PORT"] == "8080")
        #expect(e["REQUEST_METHOD"] == "POST")
        #expect(e["REQUEST_URI"] == "/app/x?a=1&b=%20")
        #expect(e["SCRIPT_NAME"] == "/app")
        #expect(e["PATH_INFO"] == "/x")
        #expect(e["PATH_TRANSLATED"] == "/srv/www/x")
        #expect(e["QUERY_STRING"] == "a=1&b=%20")
        #expect(e["CONTENT_LENGTH"] == "3")
        #expect(e["CONTENT_TYPE"] == "text/plain")
        #expect(e["REMOTE_ADDR"] == "127.0.0.1")
        #expect(e["REMOTE_PORT"] == "50000")
        #expect(e["DOCUMENT_ROOT"] == "/srv/www")
        #expect(e["SCRIPT_FILENAME"] == "/srv/www/app")
        #expect(e["REQUEST_SCHEME"] == "http")
        #expect(e["HTTPS"] == nil)
        #expect(e["REDIRECT_STATUS"] == "200")
        #expect(e["HTTP_HOST"] == "example.com:8080")
        #expect(e["HTTP_CONTENT_TYPE"] == nil && e["HTTP_CONTENT_LENGTH"] == nil)
    }

    @Test func noBodyMeansNoContentLength() throws {
        let e = try env("GET / HTTP/1.0\r\n\r\n")
        #expect(e["CONTENT_LENGTH"] == nil)
        #expect(e["CONTENT_TYPE"] == nil)
        #expect(e["PATH_INFO"] == "")
        #expect(e["PATH_TRANSLATED"] == nil)
        #expect(e["QUERY_STRING"] == "")
        #expect(e["SERVER_PROTOCOL"] == "HTTP/1.0")
    }

    @Test func chunkedBodyLengthComesFromTheFraming() throws {
        let e = try env("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", contentLength: 11)
        #expect(e["CONTENT_LENGTH"] == "11")
        #expect(e["HTTP_TRANSFER_ENCODING"] == nil)
    }

    @Test func https() throws {
        let e = try env("GET / HTTP/1.1\r\nHost: h\r\n\r\n", https: true)
        #expect(e["HTTPS"] == "on")
        #expect(e["REQUEST_SCHEME"] == "https")
    }

    @Test("header names to variables", arguments: [
        ("Accept-Language", "HTTP_ACCEPT_LANGUAGE" as String?),
        ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        ("X2-Y", "HTTP_X2_Y"),
        ("Proxy", nil),                 // httpoxy
        ("proxy", nil),
        ("X_Forwarded_For", nil),       // underscore would collide with X-Forwarded-For
        ("X.Forwarded", nil),
        ("Content-Length", nil),
        ("Content-Type", nil),
        ("Transfer-Encoding", nil),
    ])
    func variableNames(header: String, variable: String?) {
        #expect(CGIEnvironment.variableName(forHeader: header) == variable)
    }

    @Test func httpoxyAndUnderscoreHeadersNeverArrive() throws {
        let e = try env("GET / HTTP/1.1\r\nHost: h\r\nProxy: http://evil:3128\r\nX-Real-IP: 1.1.1.1\r\nX_Real_IP: 6.6.6.6\r\n\r\n")
        #expect(e["HTTP_PROXY"] == nil)
        #expect(e["HTTP_X_REAL_IP"] == "1.1.1.1")
        #expect(!e.values.contains("6.6.6.6"))
    }

    @Test func repeatedHeadersAreJoined() throws {
        let e = try env("GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nCookie: x=1\r\nAccept: b\r\nCookie: y=2\r\n\r\n")
        #expect(e["HTTP_ACCEPT"] == "a, b")
        #expect(e["HTTP_COOKIE"] == "x=1; y=2")
    }

    @Test func routeEnvCannotOverrideServerVariables() throws {
        let e = try env("GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                        extra: [("GIT_PROJECT_ROOT", "/srv/git"), ("REQUEST_METHOD", "DELETE"), ("HTTP_HOST", "admin")])
        #expect(e["GIT_PROJECT_ROOT"] == "/srv/git")
        #expect(e["REQUEST_METHOD"] == "GET")
        // The route's value came before the header: admin configuration beats the client.
        #expect(e["HTTP_HOST"] == "admin")
    }

    @Test func orderIsStable() throws {
        let h = try head("GET / HTTP/1.1\r\nHost: h\r\nB: 1\r\nA: 2\r\n\r\n")
        let ctx = CGIRequestContext(scriptName: "", pathInfo: "/", remoteAddress: "::1", remotePort: 1, serverName: "h", serverPort: 80)
        let names = CGIEnvironment.build(head: h, context: ctx).map(\.name)
        #expect(names.first == "GATEWAY_INTERFACE")
        #expect(Array(names.suffix(3)) == ["HTTP_HOST", "HTTP_B", "HTTP_A"])
    }

    @Test("host without port", arguments: [("example.com:8080", "example.com"), ("example.com", "example.com"),
                                          ("[::1]:8080", "[::1]"), ("[::1]", "[::1]"), ("127.0.0.1:80", "127.0.0.1")])
    func hostWithoutPort(host: String, name: String) {
        #expect(CGIEnvironment.hostWithoutPort(host) == name)
    }
}

@Suite("SCRIPT_NAME and PATH_INFO")
struct CGIPathTests {
    @Test("split at an extension", arguments: [
        ("/index.php", "/index.php", ""),
        ("/a/b.php/c/d", "/a/b.php", "/c/d"),
        ("/a/b.php/", "/a/b.php", "/"),
        ("/uploads/a.jpg/x.php", "/uploads/a.jpg/x.php", ""),
        ("/x.php/y.php", "/x.php", "/y.php"),
    ])
    func extensionSplit(path: String, script: String, info: String) throws {
        let s = try #require(CGIPath.splitAtExtension(path, ".php"))
        #expect(s.scriptName == script)
        #expect(s.pathInfo == info)
    }

    @Test("no split without a whole-segment match", arguments: ["/x.php.jpg", "/", "/.php", "/a/php", "/a.phpx/b"])
    func noExtensionSplit(path: String) {
        #expect(CGIPath.splitAtExtension(path, ".php") == nil)
    }

    @Test("mounts", arguments: [
        ("/api", "/api", "/api", ""),
        ("/api/v1/users", "/api", "/api", "/v1/users"),
        ("/api/", "/api/", "/api", "/"),
        ("/anything", "/", "", "/anything"),
        ("/caf\u{e9}/men\u{fc}", "/caf\u{e9}", "/caf\u{e9}", "/men\u{fc}"),
    ])
    func mountSplit(path: String, prefix: String, script: String, info: String) throws {
        let s = try #require(CGIPath.splitAtMount(path, prefix: prefix))
        #expect(s.scriptName == script && s.pathInfo == info)
    }

    @Test func mountNeedsASegmentBoundary() {
        #expect(CGIPath.splitAtMount("/apix", prefix: "/api") == nil)
        #expect(!CGIPath.isUnder("/ap", prefix: "/api"))
        #expect(!CGIPath.isUnder("/caf\u{e9}", prefix: "/caf"), "a prefix ending inside a character is no segment")
        #expect(CGIPath.isUnder("/x", prefix: "") && CGIPath.isUnder("/x", prefix: "/"))
    }

    @Test func scriptWalk() throws {
        let executables: Set<String> = ["/cgi-bin/env.sh", "/cgi-bin/sub/run"]
        let a = try #require(CGIPath.splitAtScript("/cgi-bin/env.sh/x/y", prefix: "/cgi-bin") { executables.contains($0) })
        #expect(a.scriptName == "/cgi-bin/env.sh" && a.pathInfo == "/x/y")
        let b = try #require(CGIPath.splitAtScript("/cgi-bin/sub/run", prefix: "/cgi-bin") { executables.contains($0) })
        #expect(b.scriptName == "/cgi-bin/sub/run" && b.pathInfo == "")
        #expect(CGIPath.splitAtScript("/cgi-bin/missing/x", prefix: "/cgi-bin") { executables.contains($0) } == nil)
        #expect(CGIPath.splitAtScript("/other/env.sh", prefix: "/cgi-bin") { _ in true } == nil)
    }

    @Test("decode and normalise", arguments: [
        ("/a%20b", "/a b"), ("/a//b/./c/", "/a/b/c/"), ("/a/b/../c", "/a/c"), ("/%7Euser", "/~user"),
        ("/a/%2e%2e/b", "/b"), ("/a/..", "/"), ("/", "/"), ("/caf%C3%A9", "/café"),
    ])
    func clean(raw: String, cleaned: String) throws {
        #expect(try CGIPath.clean(raw[...]) == cleaned)
    }

    /// The one-pass shortcut for paths that need no decoding or normalising agrees with
    /// the full route on every shape it accepts, and declines every other.
    @Test("already clean paths", arguments: ["/", "/a", "/a/", "/app.php/x.y", "/a.b/c..d/e.", "/~u/-_/x", "/a/.b", "/.well-known",
                                             "/a//b", "/a/./b", "/a/..", "/a%20b", "//", "x/y", ""])
    func alreadyClean(raw: String) throws {
        let shortcut = CGIPath.isAlreadyClean(raw[...])
        let full = try? CGIPath.normalize(CGIPath.percentDecode(raw[...]))
        if shortcut { #expect(full == raw) }
        #expect(shortcut == (full == raw && !raw.contains("/.") && !raw.contains("%")))
    }

    @Test("refused paths", arguments: ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/a%00b", "/a%0d%0aSet-Cookie:x",
                                        "/a%zz", "/a%2", "relative"])
    func refused(raw: String) {
        #expect(throws: CGIPath.Error.self) { try CGIPath.clean(raw[...]) }
    }
}
