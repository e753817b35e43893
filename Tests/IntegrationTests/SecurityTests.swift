import Foundation
import GatewaySystem
import Testing
import Glibc

/// What a hostile client or a misbehaving app must not achieve (issue #8 B-E, G), under
/// every worker class: crossed responses, a flood of stderr, code run from an upload, an
/// open redirect, a forged client address, a public status page, a denied path.
@Suite("Security: hostile clients and misbehaving apps", .serialized)
struct SecurityTests {
    /// The misbehaving FastCGI app (Apps/misbehaving.py) on a unix socket, and a tree
    /// that serves as its root and as a static directory.
    final class Fixture: Sendable {
        let app = Process()
        let socket: String
        let root: String

        init() throws {
            let token = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            socket = "/tmp/gatewayd-it-misbehaving-\(token).sock"
            root = "/tmp/gatewayd-it-root-\(token)"
            let fm = FileManager.default
            try fm.createDirectory(atPath: root + "/uploads", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/admin", withIntermediateDirectories: true)
            try "<?php echo 'owned'; ?>".write(toFile: root + "/uploads/a.jpg", atomically: true, encoding: .utf8)
            try "<?php echo 'real'; ?>".write(toFile: root + "/real.php", atomically: true, encoding: .utf8)
            try "secret\n".write(toFile: root + "/admin/index.html", atomically: true, encoding: .utf8)
            try "hello\n".write(toFile: root + "/sub/index.html", atomically: true, encoding: .utf8)
            app.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            app.arguments = ["python3", repositoryRoot + "/Tests/IntegrationTests/Apps/misbehaving.py", socket]
            try app.run()
            let deadline = Date().addingTimeInterval(5)
            while !fm.fileExists(atPath: socket) && Date() < deadline { usleep(20_000) }
        }

        func config(_ extra: String = "") -> String {
            """
            [[app]]
            name = "m"
            connect = "unix:\(socket)"
            max_conns = 1
            keep_conn = true
            root = "\(root)"
            [[route]]
            path = "/m"
            app = "m"
            [[route]]
            extension = ".php"
            app = "m"
            [[route]]
            path = "/cgi-bin"
            cgi = "\(repositoryRoot)/apps/cgi"
            [[route]]
            path = "/files"
            static = "\(root)"
            [[route]]
            path = "/files/admin"
            static = "\(root)/admin"
            allow = ["10.0.0.0/8"]
            [[route]]
            path = "/inc"
            deny = true
            [cgi]
            interpreters = { ".py" = "python3" }
            \(extra)
            """
        }

        func stop() {
            kill(app.processIdentifier, SIGKILL)
            app.waitUntilExit()
            unlink(socket)
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    static func env(_ r: HTTPResponse) throws -> [String: String] {
        let o = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        return o?["env"] as? [String: String] ?? [:]
    }

    /// Several requests on one kept client connection; their responses in order.
    static func keptExchange(_ port: Int, _ paths: [String]) throws -> [HTTPResponse] {
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
        defer { try? fd.close() }
        var out: [HTTPResponse] = []
        for p in paths {
            try fd.writeAll(Array("GET \(p) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let r = try? parseResponse(data) {
                    let chunked = r.header("Transfer-Encoding")?.lowercased() == "chunked"
                    if chunked ? data.suffix(5).elementsEqual(Array("0\r\n\r\n".utf8)) : r.body.count >= Int(r.header("Content-Length") ?? "0") ?? 0 {
                        out.append(r)
                        break
                    }
                }
                guard try fd.waitReadable(timeoutMilliseconds: 100) else { continue }
                guard let n = try fd.read(into: &chunk, from: 0), n > 0 else { break }
                data += chunk[0..<n]
            }
        }
        return out
    }

    @Test("an app's bytes after END_REQUEST never reach the next client; stderr is capped and escaped", arguments: workerClasses)
    func misbehavingApp(workerClass: String) throws {
        let f = try Fixture()
        defer { f.stop() }
        let server = try GatewaydServer(config: f.config(), server: "keepalive = 5", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        // One slot, one kept connection: the stray bytes wait on it for the next request.
        for _ in 0..<3 {
            let first = try http(server.port, "GET", "/m/after")
            #expect(first.status == 200 && first.text == "first\n")
            usleep(50_000)
            let next = try http(server.port, "GET", "/m/next")
            #expect(next.status == 200 && next.text == "ok /next\n", "\(workerClass): \(next.status) \(next.text)")
        }
        // The same on one kept client connection (the thread worker once crossed here).
        let kept = try Self.keptExchange(server.port, ["/m/after", "/m/two", "/m/after", "/m/three"])
        #expect(kept.map(\.text) == ["first\n", "ok /two\n", "first\n", "ok /three\n"], "\(workerClass)")

        // 10 MiB of stderr: a bounded share is logged, with its control bytes escaped.
        let before = server.errorLog.utf8.count
        let flood = try http(server.port, "GET", "/m/stderr?bytes=10485760", timeout: 60)
        #expect(flood.status == 200 && flood.text == "logged\n")
        usleep(100_000)
        let log = server.errorLog
        let logged = log.utf8.count - before
        #expect(logged < 128 * 1024, "stderr logged: \(logged) bytes")
        #expect(log.contains("more bytes of stderr not logged"))
        #expect(log.contains("noise \\x1b[31mred\\x1b[0m \\x07bell"), "control bytes are escaped")
        #expect(!log.utf8.contains(0x1B) && !log.utf8.contains(0x07), "no raw control byte reaches the error log")
    }

    @Test("no code from uploads, no open redirect, denied and allowed paths", arguments: workerClasses)
    func pathsAndRedirects(workerClass: String) throws {
        let f = try Fixture()
        defer { f.stop() }
        let server = try GatewaydServer(config: f.config(), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        // An extension route with a root runs only an existing script (cgi.fix_pathinfo).
        #expect(try http(server.port, "GET", "/uploads/a.jpg/x.php").status == 404)
        #expect(try http(server.port, "GET", "/nothing.php").status == 404)
        let real = try http(server.port, "GET", "/real.php/extra")
        #expect(real.status == 200 && real.text == "ok /extra\n")

        // The slash redirect's Location comes from the normalised path.
        for target in ["//evil.example/../files/sub", "/%5Cevil.example/../files/sub", "/files//sub", "/files/./sub?x=1"] {
            let r = try parseResponse(Array(try rawExchange(server.port, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").utf8))
            let location = r.header("Location") ?? ""
            #expect(r.status == 301, "\(target)")
            #expect(location.hasPrefix("/files/sub/"), "\(target) -> \(location)")
            #expect(!location.hasPrefix("//") && !location.hasPrefix("/\\"), "\(target) -> \(location)")
        }
        let backslash = try rawExchange(server.port, "GET /\\evil.example/.. HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(!backslash.contains("Location: //") && !backslash.contains("Location: /\\"), "\(backslash.prefix(200))")

        // deny = true, and allow lists.
        #expect(try http(server.port, "GET", "/inc/preload.php").status == 403)
        #expect(try http(server.port, "GET", "/inc").status == 403)
        #expect(try http(server.port, "GET", "/files/admin/").status == 403, "127.0.0.1 is not in 10.0.0.0/8")
        #expect(try http(server.port, "GET", "/files/sub/").text == "hello\n")

        // OPTIONS * is the server's own (RFC 9112 §3.2.4); an empty Host is refused.
        let options = try rawExchange(server.port, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(options.hasPrefix("HTTP/1.1 200") && options.contains("Allow: GET, HEAD, POST"), "\(options)")
        #expect(try rawExchange(server.port, "GET /files/sub/ HTTP/1.1\r\nHost:\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        let chunked = "POST /m/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"
        #expect(try rawExchange(server.port, chunked).hasPrefix("HTTP/1.1 400"))
    }

    @Test("client identity: the proxy's own header only, valid addresses only, absolute-form host", arguments: workerClasses)
    func identity(workerClass: String) throws {
        let f = try Fixture()
        defer { f.stop() }
        let xff = try GatewaydServer(config: f.config(), server: "forwarded_allow_ips = [\"127.0.0.1\"]\nserver_name = \"gw.example\"",
                                     workers: 1, workerClass: workerClass)
        defer { xff.stop() }
        func remote(_ s: GatewaydServer, _ headers: [(String, String)]) throws -> [String: String] {
            try Self.env(http(s.port, "GET", "/cgi-bin/echo.py", headers: headers))
        }
        // nginx appends X-Forwarded-For and passes the client's Forwarded through.
        let forged = try remote(xff, [("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "203.0.113.7")])
        #expect(forged["REMOTE_ADDR"] == "203.0.113.7" && forged["HTTPS"] == nil, "\(forged)")
        // Hops that are not addresses are believed by nothing.
        for bad in ["cafe", "1.2.3.4.5", "999.1.1.1", "10.0.0.1 ; drop"] {
            #expect(try remote(xff, [("X-Forwarded-For", bad)])["REMOTE_ADDR"] == "127.0.0.1", "\(bad)")
        }
        #expect(try remote(xff, [("X-Forwarded-For", "203.0.113.7, cafe")])["REMOTE_ADDR"] == "127.0.0.1",
                "nothing beyond a hop the proxy cannot have written")
        // Absolute-form: the authority is the host; REQUEST_URI the origin form; SERVER_NAME configured.
        let abs = try Self.env(parseResponse(Array(try rawExchange(xff.port,
            "GET http://other.example/cgi-bin/echo.py?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").utf8)))
        #expect(abs["HTTP_HOST"] == "other.example" && abs["REQUEST_URI"] == "/cgi-bin/echo.py?q=1", "\(abs)")
        #expect(abs["SERVER_NAME"] == "gw.example")

        let std = try GatewaydServer(config: f.config(), server: "forwarded_allow_ips = [\"127.0.0.1\"]\nforwarded_header = \"forwarded\"",
                                     workers: 1, workerClass: workerClass)
        defer { std.stop() }
        let viaForwarded = try remote(std, [("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https"), ("X-Forwarded-For", "6.6.6.6")])
        #expect(viaForwarded["REMOTE_ADDR"] == "2001:db8::7" && viaForwarded["HTTPS"] == "on", "\(viaForwarded)")
        #expect(try remote(std, [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https")])["REMOTE_ADDR"] == "127.0.0.1")
        #expect(try remote(std, [("Forwarded", "for=cafe")])["REMOTE_ADDR"] == "127.0.0.1")
    }

    @Test("status page and metrics: only status_allow, also through PROXY", arguments: workerClasses)
    func operationsEndpoints(workerClass: String) throws {
        let f = try Fixture()
        defer { f.stop() }
        let server = try GatewaydServer(config: f.config(), server: "proxy_protocol = true\nstatus_path = \"/status\"\nmetrics_path = \"/metrics\"",
                                        workers: 1, workerClass: workerClass)
        defer { server.stop() }
        func get(_ source: String, _ path: String) throws -> String {
            try rawExchange(server.port, "PROXY TCP4 \(source) 127.0.0.1 40000 80\r\nGET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        }
        #expect(try get("127.0.0.1", "/status").hasPrefix("HTTP/1.1 200"))
        #expect(try get("127.0.0.1", "/metrics").hasPrefix("HTTP/1.1 200"))
        for path in ["/status", "/status?json", "/metrics"] {
            let outside = try get("203.0.113.9", path)
            #expect(outside.hasPrefix("HTTP/1.1 403"), "\(path): \(outside.prefix(100))")
            #expect(!outside.contains(f.socket), "no backend address leaks")
        }
        // A PROXY header naming something that is not an address: 400 and closed.
        for bad in ["999.1.1.1", "1.2.3.4.5", "cafe"] {
            #expect(try get(bad, "/status").hasPrefix("HTTP/1.1 400"), "\(bad)")
        }

        let closed = try GatewaydServer(config: f.config(), server: "status_path = \"/status\"\nstatus_allow = [\"10.0.0.0/8\"]",
                                        workers: 1, workerClass: workerClass)
        defer { closed.stop() }
        #expect(try http(closed.port, "GET", "/status").status == 403)
    }
}
