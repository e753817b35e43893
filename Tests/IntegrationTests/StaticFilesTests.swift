import Foundation
import GatewaySystem
import Testing
import Glibc

/// A directory of files for a static route, removed by `remove()`.
struct StaticDirectory {
    let path = "/tmp/gatewayd-it-static-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

    @discardableResult
    func add(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Sends raw bytes and returns the whole answer (the connection is closed by the server or after `timeout`).
func rawExchange(_ port: Int, _ request: String, timeout: Double = 5) throws -> String {
    let fd = try Socket.connectTCP(host: "127.0.0.1", port: port)
    defer { try? fd.close() }
    try fd.writeAll(Array(request.utf8))
    return String(decoding: try readAll(fd, timeout: timeout), as: UTF8.self)
}

let curl = "/usr/bin/curl"

/// Static routes under every worker class, checked with curl and with a Python client
/// that sends what a browser sends on a reload (If-None-Match and If-Modified-Since).
@Suite("Static files", .serialized)
struct StaticFilesTests {
    static func config(_ dir: String, _ extra: String = "") -> String {
        """
        [[route]]
        path = "/"
        static = "\(dir)"
        \(extra)
        [[route]]
        path = "/files"
        static = "\(dir)/sub"
        """
    }

    static func makeSite() throws -> (StaticDirectory, [UInt8]) {
        let site = try StaticDirectory()
        var big = [UInt8](repeating: 0, count: 5_000_000)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        try site.add("big.bin", big)
        try site.add("index.html", Array("<h1>home</h1>\n".utf8))
        try site.add("style.css", Array("body { color: red }\n".utf8))
        try site.add("sub/index.html", Array("sub index\n".utf8))
        try site.add("sub/page.txt", Array("a page\n".utf8))
        try site.add("noindex/file.txt", Array("x\n".utf8))
        try site.add(".env", Array("SECRET=1\n".utf8))
        try site.add(".git/config", Array("[core]\n".utf8))
        symlink("/etc/hostname", site.path + "/out-link")
        symlink(site.path + "/style.css", site.path + "/in-link.css")
        return (site, big)
    }

    func curlRun(_ args: [String]) throws -> RunResult { try runProgram(curl, ["-s", "--max-time", "20"] + args) }

    @Test("files, types, HEAD, ranges, resume, redirects, refusals", arguments: workerClasses)
    func serving(workerClass: String) throws {
        let (site, big) = try Self.makeSite()
        defer { site.remove() }
        let server = try GatewaydServer(config: Self.config(site.path), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"

        // The whole big file by curl, byte for byte.
        let out = site.path + "/../gw-static-\(getpid())-download"
        defer { unlink(out) }
        let got = try curlRun(["-o", out, "-w", "%{http_code} %{content_type} %{size_download}", base + "/big.bin"])
        #expect(got.stdout == "200 application/octet-stream 5000000")
        #expect(try sha256Hex(Array(Data(contentsOf: URL(fileURLWithPath: out)))) == (try sha256Hex(big)))

        // Types, index, and the head fields of a GET.
        let css = try http(server.port, "GET", "/style.css")
        #expect(css.status == 200 && css.header("Content-Type") == "text/css; charset=utf-8" && css.text == "body { color: red }\n")
        #expect(css.header("Accept-Ranges") == "bytes")
        #expect(css.header("ETag")?.hasPrefix("\"") == true && css.header("Last-Modified")?.hasSuffix(" GMT") == true)
        #expect(try http(server.port, "GET", "/").text == "<h1>home</h1>\n")
        #expect(try http(server.port, "GET", "/sub/").text == "sub index\n")
        #expect(try http(server.port, "GET", "/files/page.txt").text == "a page\n", "a route's directory maps below its prefix")
        #expect(try http(server.port, "GET", "/sub/../style.css").status == 200, "a path is normalised first")

        // HEAD: the same head, no body.
        let head = try curlRun(["-I", base + "/big.bin"])
        #expect(head.stdout.hasPrefix("HTTP/1.1 200"))
        #expect(head.stdout.contains("Content-Length: 5000000\r\n"))

        // Ranges as curl sends them, and a resumed download (curl -C -).
        let range = try curlRun(["-r", "1000-1999", "-D", "-", "-o", out, base + "/big.bin"])
        #expect(range.stdout.hasPrefix("HTTP/1.1 206"))
        #expect(range.stdout.contains("Content-Range: bytes 1000-1999/5000000\r\n"))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == Array(big[1000..<2000]))
        let suffix = try curlRun(["-r", "-100", "-o", out, "-w", "%{http_code}", base + "/big.bin"])
        #expect(suffix.stdout == "206")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == Array(big.suffix(100)))
        try Data(big.prefix(1_234_567)).write(to: URL(fileURLWithPath: out))
        let resumed = try curlRun(["-C", "-", "-o", out, "-w", "%{http_code}", base + "/big.bin"])
        #expect(resumed.stdout == "206")
        #expect(try sha256Hex(Array(Data(contentsOf: URL(fileURLWithPath: out)))) == (try sha256Hex(big)), "resumed download is whole")
        let beyond = try curlRun(["-r", "6000000-", "-D", "-", "-o", "/dev/null", base + "/big.bin"])
        #expect(beyond.stdout.hasPrefix("HTTP/1.1 416"))
        #expect(beyond.stdout.contains("Content-Range: bytes */5000000\r\n"))
        let stale = try http(server.port, "GET", "/big.bin", headers: [("Range", "bytes=0-9"), ("If-Range", "\"stale\"")])
        #expect(stale.status == 200 && stale.body.count == 5_000_000, "If-Range that does not match: the whole file")
        let fresh = try http(server.port, "GET", "/big.bin", headers: [("Range", "bytes=0-9"), ("If-Range", css.header("ETag") ?? "")])
        #expect(fresh.status == 200, "another file's tag does not match either")

        // A directory without its slash, with its query kept.
        let redirect = try curlRun(["-D", "-", "-o", "/dev/null", base + "/sub?x=1"])
        #expect(redirect.stdout.hasPrefix("HTTP/1.1 301"))
        #expect(redirect.stdout.contains("Location: /sub/?x=1\r\n"))
        #expect(try curlRun(["-L", base + "/sub"]).stdout == "sub index\n")

        // What is never served.
        #expect(try http(server.port, "GET", "/.env").status == 404)
        #expect(try http(server.port, "GET", "/.git/config").status == 404)
        #expect(try http(server.port, "GET", "/sub/.%2e/.env").status == 404)
        #expect(try http(server.port, "GET", "/out-link").status == 403, "a link out of the directory")
        #expect(try http(server.port, "GET", "/in-link.css").text == "body { color: red }\n", "a link inside it")
        #expect(try http(server.port, "GET", "/noindex/").status == 404)
        #expect(try http(server.port, "GET", "/missing.txt").status == 404)
        #expect(try http(server.port, "GET", "/style.css/x").status == 404)
        #expect(try http(server.port, "POST", "/style.css").status == 405)
        for raw in ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/sub/..%2f..%2f..%2fetc/passwd"] {
            let answer = try rawExchange(server.port, "GET \(raw) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 400") || answer.hasPrefix("HTTP/1.1 404"), "\(raw): \(answer.prefix(40))")
            #expect(!answer.contains("root:"), "\(raw) must not reach /etc/passwd")
        }

        // Several requests on one kept connection, a range among them.
        let reused = try curlRun(["-v", "-r", "0-3", base + "/style.css", "-r", "0-3", base + "/index.html"])
        #expect(reused.stdout == "body<h1>", "got \(reused.stdout)")
        #expect(reused.stderr.contains("Re-using existing connection") || reused.stderr.contains("Reusing existing connection"))
    }

    @Test("a browser's reload: 304 while unchanged, 200 once the file changes", arguments: workerClasses)
    func conditional(workerClass: String) throws {
        let (site, _) = try Self.makeSite()
        defer { site.remove() }
        let server = try GatewaydServer(config: Self.config(site.path), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        // Python's http.client plays the browser: it stores the validators of the first
        // answer and sends them back, as Chrome and Firefox do on a reload.
        let script = """
        import http.client, os, sys, time
        port = int(sys.argv[1]); path = sys.argv[2]
        def get(headers):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/style.css", headers=headers)
            r = c.getresponse(); body = r.read(); c.close()
            return r.status, dict(r.getheaders()), body
        s, h, b = get({})
        assert s == 200 and b == b"body { color: red }\\n", (s, b)
        both = {"If-None-Match": h["ETag"], "If-Modified-Since": h["Last-Modified"]}
        s2, h2, b2 = get(both)
        assert s2 == 304 and b2 == b"" and h2["ETag"] == h["ETag"], (s2, h2, b2)
        s3, _, _ = get({"If-Modified-Since": h["Last-Modified"]})
        assert s3 == 304, s3
        s4, _, _ = get({"If-Match": '"nope"'})
        assert s4 == 412, s4
        # The file changes (new content, a later mtime): the same validators now get 200.
        with open(path, "w") as f: f.write("body { color: blue }\\n")
        t = time.time() + 5; os.utime(path, (t, t))
        s5, h5, b5 = get(both)
        assert s5 == 200 and b5 == b"body { color: blue }\\n" and h5["ETag"] != h["ETag"], (s5, h5, b5)
        print("ok")
        """
        let r = try runProgram("/usr/bin/python3", ["-c", script, String(server.port), site.path + "/style.css"])
        #expect(r.stdout == "ok\n", "python: \(r.stderr)")
    }

    @Test("kept-open files: a file written, replaced, removed or moved away is served as it now is", arguments: workerClasses)
    func openFileCacheFollowsChanges(workerClass: String) throws {
        let (site, _) = try Self.makeSite()
        defer { site.remove() }
        let server = try GatewaydServer(config: Self.config(site.path, "index = [\"index.html\", \"index.htm\"]"), workers: 1,
                                        workerClass: workerClass)
        defer { server.stop() }
        // Each change is made, then the file asked for at once, on a kept connection:
        // the open-file cache must never answer with what was there before.
        let script = """
        import http.client, os, sys
        port = int(sys.argv[1]); root = sys.argv[2]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        def get(path):
            c.request("GET", path); r = c.getresponse(); return r.status, r.read()
        def check(path, status, body, why):
            for _ in range(3):  # the first requests open the file and cache it
                got = get(path)
                assert got[0] == status and (body is None or got[1] == body), (why, got)
        d = os.path.join(root, "deep", "er"); os.makedirs(d)
        f = os.path.join(d, "f.txt")
        open(f, "w").write("one\\n"); check("/deep/er/f.txt", 200, b"one\\n", "first")
        open(f, "r+").write("ONE\\n"); check("/deep/er/f.txt", 200, b"ONE\\n", "written in place")
        open(f, "a").write("more\\n"); check("/deep/er/f.txt", 200, b"ONE\\nmore\\n", "grown")
        open(f + ".new", "w").write("two\\n"); os.rename(f + ".new", f); check("/deep/er/f.txt", 200, b"two\\n", "replaced by a rename")
        os.rename(os.path.join(root, "deep"), os.path.join(root, "gone")); check("/deep/er/f.txt", 404, None, "a parent moved away")
        os.makedirs(d); open(f, "w").write("three\\n"); check("/deep/er/f.txt", 200, b"three\\n", "made again")
        os.unlink(f); check("/deep/er/f.txt", 404, None, "removed")
        idx = os.path.join(root, "noindex", "index.htm"); open(idx, "w").write("htm\\n"); check("/noindex/", 200, b"htm\\n", "an index file")
        open(os.path.join(root, "noindex", "index.html"), "w").write("html\\n"); check("/noindex/", 200, b"html\\n", "the first index file appears")
        print("ok")
        """
        let r = try runProgram("/usr/bin/python3", ["-c", script, String(server.port), site.path])
        #expect(r.stdout == "ok\n", "python: \(r.stderr)")
    }

    @Test("epoll: a client that does not read a big file holds nothing else up")
    func epollSlowReader() throws {
        let site = try StaticDirectory()
        defer { site.remove() }
        try site.add("index.html", Array("hi\n".utf8))
        let huge = try site.add("huge.bin", [])
        truncate(huge, 256 << 20)  // sparse: 256 MiB of zeros
        let server = try GatewaydServer(config: Self.config(site.path), workers: 1, workerClass: "epoll")
        defer { server.stop() }
        // Three clients ask for the huge file and read nothing: their sockets fill.
        var stalled: [FileDescriptor] = []
        defer { for fd in stalled { try? fd.close() } }
        for _ in 0..<3 {
            let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
            try fd.writeAll(Array("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            stalled.append(fd)
        }
        usleep(300_000)
        let start = Date()
        for _ in 0..<50 { #expect(try http(server.port, "GET", "/index.html").text == "hi\n") }
        #expect(Date().timeIntervalSince(start) < 5, "50 small requests beside 3 stalled downloads")
        // One of them reads its file to the end: every byte arrives.
        var total = 0
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var headSeen = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard try stalled[0].waitReadable(timeoutMilliseconds: 1000), let n = try stalled[0].read(into: &buf, from: 0), n > 0 else { continue }
            if !headSeen, let end = findHeadEnd(Array(buf[0..<n])) {
                headSeen = true
                total += n - end - 4
            } else {
                total += n
            }
            if total >= 256 << 20 { break }
        }
        #expect(total == 256 << 20)
    }
}
