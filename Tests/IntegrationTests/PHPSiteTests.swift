import Foundation
import GatewaySystem
import Testing
import Glibc

/// The sample PHP site (apps/php/site) behind a `php = true` route, run by a real
/// php-fpm: a front controller with pretty URLs, a script with PATH_INFO, a directory
/// index, static assets, a form, uploads (plain, chunked, with Expect: 100-continue),
/// redirects and a session that persists; and what must never run or be shown.
@Suite("PHP site through php-fpm", .serialized)
struct PHPSiteTests {
    static let site = "\(repositoryRoot)/apps/php/site"

    static func config(_ socket: String, mount: String = "/") -> String {
        """
        [limits]
        max_body_size = "4M"
        [[app]]
        name = "fpm"
        connect = "unix:\(socket)"
        max_conns = 2
        root = "\(site)"
        [[route]]
        path = "\(mount)"
        app = "fpm"
        php = true
        """
    }

    func curlRun(_ args: [String]) throws -> RunResult { try runProgram(curl, ["-s", "--max-time", "20"] + args) }

    static func json(_ text: String) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw TestFailure("not JSON: \(text)") }
        return o
    }

    @Test("front controller, scripts, assets, forms, uploads, redirects, session", arguments: workerClasses)
    func flow(workerClass: String) throws {
        let fpm = try PHPFPM(children: 2)
        defer { fpm.stop() }
        let server = try GatewaydServer(config: Self.config(fpm.socketPath), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"

        // The front controller: "/" and a pretty URL, with what PHP saw.
        #expect(try http(server.port, "GET", "/").text == "home of the sample site\n")
        let article = try Self.json(http(server.port, "GET", "/articles/42/hello-world").text)
        #expect(article["article"] as? Int == 42 && article["slug"] as? String == "hello-world")
        let env = try Self.json(http(server.port, "GET", "/env?q=1").text)
        #expect(env["SCRIPT_NAME"] as? String == "/index.php")
        #expect(env["SCRIPT_FILENAME"] as? String == "\(Self.site)/index.php")
        #expect(env["REQUEST_URI"] as? String == "/env?q=1")
        #expect(env["DOCUMENT_ROOT"] as? String == Self.site)

        // A script of its own, split after .php; a directory's index.php.
        let info = try Self.json(http(server.port, "GET", "/info.php/extra/x").text)
        #expect(info["script"] as? String == "info.php" && info["PATH_INFO"] as? String == "/extra/x")
        #expect(info["SCRIPT_NAME"] as? String == "/info.php" && info["SCRIPT_FILENAME"] as? String == "\(Self.site)/info.php")
        let blog = try http(server.port, "GET", "/blog")
        #expect(blog.status == 301 && blog.header("Location") == "/blog/")
        #expect(try http(server.port, "GET", "/blog/").text == "blog index\n")

        // Static files come from the root without PHP; uploaded files never run.
        let css = try http(server.port, "GET", "/assets/style.css")
        #expect(css.status == 200 && css.header("Content-Type") == "text/css; charset=utf-8" && css.header("ETag") != nil)
        let jpg = try http(server.port, "GET", "/uploads/a.jpg")
        #expect(jpg.status == 200 && jpg.header("Content-Type") == "image/jpeg")
        #expect(jpg.text.contains("<?php"), "served as bytes, not run")
        for path in ["/uploads/a.jpg/x.php", "/uploads/a.jpg/.php", "/missing.php", "/assets/style.css/x.php", "/.env", "/index.PHP"] {
            let r = try http(server.port, "GET", path)
            #expect(r.status == 404, "\(path): \(r.status) \(r.text)")
            #expect(!r.text.contains("must never run") && !r.text.contains("SECRET"), "\(path)")
        }
        #expect(try http(server.port, "POST", "/assets/style.css").status == 405)

        // A form POST, by curl.
        let form = try Self.json(curlRun(["-d", "name=Ann Lee&colour=green", base + "/form"]).stdout)
        #expect(form["name"] as? String == "Ann Lee" && form["colour"] as? String == "green")

        // Uploads: plain, chunked (php-fpm needs CONTENT_LENGTH: gatewayd buffers it),
        // and 1.5 MB, for which curl sends Expect: 100-continue.
        let file = server.dir + "/upload.bin"
        var bytes = [UInt8](repeating: 0, count: 1_500_000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ i >> 9) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let digest = try sha256Hex(bytes)
        for extra in [[], ["-H", "Transfer-Encoding: chunked"], ["-H", "Expect: 100-continue"]] {
            let r = try curlRun(["-v"] + extra + ["-F", "file=@\(file);filename=data.bin", "-F", "note=hi", base + "/upload"])
            let o = try Self.json(r.stdout)
            #expect(o["sha256"] as? String == digest && o["size"] as? Int == bytes.count && o["note"] as? String == "hi", "\(extra): \(r.stdout)")
            if extra.contains("Expect: 100-continue") { #expect(r.stderr.contains("HTTP/1.1 100 Continue"), "\(r.stderr.suffix(600))") }
        }

        // Post/Redirect/Get with a session cookie that persists between requests.
        let jar = server.dir + "/cookies"
        let login = try curlRun(["-c", jar, "-b", jar, "-L", "-D", "-", "-d", "user=ann", base + "/login"])
        #expect(login.stdout.contains("HTTP/1.1 303"), "\(login.stdout)")
        #expect(login.stdout.contains("Set-Cookie: PHPSESSID="))
        #expect(login.stdout.contains("\"user\":\"ann\",\"visits\":1"))
        let again = try curlRun(["-c", jar, "-b", jar, base + "/me"])
        #expect(again.stdout.contains("\"visits\":2"), "\(again.stdout)")
        #expect(try http(server.port, "GET", "/me").status == 401, "no cookie, no session")
        let moved = try http(server.port, "GET", "/old-page")
        #expect(moved.status == 301 && moved.header("Location") == "/articles/1/moved")
    }

    @Test("request bodies: 413 before the body is sent, 417 for an unknown expectation, chunked past the limit", arguments: workerClasses)
    func bodyLimits(workerClass: String) throws {
        let fpm = try PHPFPM(children: 1)
        defer { fpm.stop() }
        let server = try GatewaydServer(config: Self.config(fpm.socketPath), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        // Content-Length past max_body_size with Expect: the answer comes before any body byte.
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        defer { try? fd.close() }
        try fd.writeAll(Array("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n".utf8))
        let answer = String(decoding: try readAll(fd, timeout: 5), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(80))")
        #expect(!answer.contains("100 Continue"))
        let odd = try rawExchange(server.port, "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: teapot\r\n\r\nabc")
        #expect(odd.hasPrefix("HTTP/1.1 417"), "\(odd.prefix(80))")
        // Chunked past the limit: 413 once the limit is crossed.
        let big = [UInt8](repeating: 65, count: 5_000_000)
        let r = try http(server.port, "POST", "/form", body: big, chunked: true)
        #expect(r.status == 413)
        // The server is still fine.
        #expect(try http(server.port, "GET", "/").status == 200)
    }

    @Test("a php route below a prefix maps the root to the prefix")
    func mounted() throws {
        let fpm = try PHPFPM(children: 1)
        defer { fpm.stop() }
        let server = try GatewaydServer(config: Self.config(fpm.socketPath, mount: "/site"), workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let env = try Self.json(http(server.port, "GET", "/site/env").text)
        #expect(env["SCRIPT_NAME"] as? String == "/site/index.php")
        #expect(env["SCRIPT_FILENAME"] as? String == "\(Self.site)/index.php")
        #expect(try Self.json(http(server.port, "GET", "/site/articles/3/x").text)["article"] as? Int == 3)
        #expect(try http(server.port, "GET", "/site/assets/style.css").status == 200)
        #expect(try http(server.port, "GET", "/site").header("Location") == "/site/")
        #expect(try http(server.port, "GET", "/assets/style.css").status == 404, "nothing outside the prefix")
    }
}
