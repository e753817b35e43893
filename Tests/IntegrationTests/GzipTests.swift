import Foundation
import Testing
import Glibc

/// On-the-fly gzip (`gzip = true` on a route, nginx's gzip): FastCGI, CGI and static
/// answers compressed for clients that accept gzip, streamed and chunked, checked by
/// Python's gzip module and curl --compressed.
@Suite("gzip")
struct GzipTests {
    static func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import sys,gzip; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        let writer = Thread { input.fileHandleForWriting.write(Data(bytes)); try? input.fileHandleForWriting.close() }
        writer.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("not a gzip stream (\(bytes.count) bytes)") }
        return Array(data)
    }

    static let gz = [("Accept-Encoding", "gzip, deflate, br")]

    @Test("FastCGI, CGI and static answers gzip-coded for gzip clients; never a coded, no-transform, short or 206 one",
          arguments: workerClasses)
    func compressed(workerClass: String) throws {
        let dir = "/tmp/gatewayd-it-gzip-\(getpid())-\(workerClass)"
        try FileManager.default.createDirectory(atPath: dir + "/cgi", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let page = String(repeating: "<p>a page worth compressing, line after line</p>\n", count: 2000)
        try page.write(toFile: dir + "/page.html", atomically: true, encoding: .utf8)
        try "tiny\n".write(toFile: dir + "/tiny.html", atomically: true, encoding: .utf8)
        try Data(repeating: 7, count: 5000).write(to: URL(fileURLWithPath: dir + "/blob.bin"))
        let script = dir + "/cgi/page.py"
        try "import sys\nsys.stdout.write('Content-Type: text/html\\r\\n\\r\\n')\nsys.stdout.write('<li>from CGI</li>\\n' * 3000)\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let config = """
            [[app]]
            name = "py"
            command = ["python3", "\(HostedAppsTests.pythonApp)"]
            env_copy = ["PATH", "HOME"]
            processes = 1
            [[route]]
            path = "/py"
            app = "py"
            gzip = true
            gzip_types = ["text/plain", "application/octet-stream"]
            [[route]]
            path = "/files"
            static = "\(dir)"
            gzip = true
            [cgi]
            interpreters = { ".py" = "python3" }
            [[route]]
            path = "/cgi"
            cgi = "\(dir)/cgi"
            gzip = true
            """
        let server = try GatewaydServer(config: config, workers: 1, workerClass: workerClass)
        defer { server.stop() }

        // FastCGI: a short answer, and 3 MB streamed by the app in 65,000-byte pieces.
        let hello = try http(server.port, "GET", "/py/hello", headers: Self.gz)
        #expect(hello.header("Content-Encoding") == "gzip" && hello.header("Vary") == "Accept-Encoding")
        #expect(hello.header("Transfer-Encoding") == "chunked" && hello.header("Content-Length") == nil)
        #expect(try Self.gunzip(hello.body) == Array("Hello from Python (flup)\n".utf8))
        let stream = try http(server.port, "GET", "/py/stream?bytes=3000000", headers: Self.gz)
        let streamed = try Self.gunzip(stream.body)
        #expect(streamed.count == 3_000_000 && streamed.prefix(3) == [97, 98, 99] && stream.body.count < 300_000)
        #expect(try HTTPSTests.run("curl", ["-s", "--compressed", "http://127.0.0.1:\(server.port)/py/hello"]).output == "Hello from Python (flup)\n")
        // The client that does not take gzip gets it as it is, still with Vary.
        let plain = try http(server.port, "GET", "/py/hello")
        #expect(plain.text == "Hello from Python (flup)\n" && plain.header("Content-Encoding") == nil && plain.header("Vary") == "Accept-Encoding")
        // Never: an answer already coded, one marked no-transform, an unlisted type.
        let coded = try http(server.port, "GET", "/py/status?code=200&name=Content-Encoding&value=br", headers: Self.gz)
        #expect(coded.header("Content-Encoding") == "br" && coded.text == "status 200\n")
        let noTransform = try http(server.port, "GET", "/py/status?code=200&name=Cache-Control&value=no-transform", headers: Self.gz)
        #expect(noTransform.header("Content-Encoding") == nil && noTransform.text == "status 200\n")
        let json = try http(server.port, "GET", "/py/env", headers: Self.gz)
        #expect(json.header("Content-Encoding") == nil && json.header("Vary") == nil)
        let head = try http(server.port, "HEAD", "/py/hello", headers: Self.gz)
        #expect(head.header("Content-Encoding") == "gzip" && head.body.isEmpty)

        // CGI.
        let cgi = try http(server.port, "GET", "/cgi/page.py", headers: Self.gz)
        #expect(cgi.header("Content-Encoding") == "gzip")
        #expect(try Self.gunzip(cgi.body) == Array(String(repeating: "<li>from CGI</li>\n", count: 3000).utf8))

        // Static: coded and chunked with a weak ETag; ranges stay on the file's bytes.
        let file = try http(server.port, "GET", "/files/page.html", headers: Self.gz)
        #expect(file.status == 200 && file.header("Content-Encoding") == "gzip" && file.header("Transfer-Encoding") == "chunked")
        #expect(try Self.gunzip(file.body) == Array(page.utf8) && file.body.count < page.utf8.count / 10)
        let etag = try #require(file.header("ETag"))
        #expect(etag.hasPrefix("W/\"") && file.header("Accept-Ranges") == nil)
        #expect(try http(server.port, "GET", "/files/page.html", headers: Self.gz + [("If-None-Match", etag)]).status == 304)
        let whole = try http(server.port, "GET", "/files/page.html")
        #expect(whole.text == page && whole.header("Vary") == "Accept-Encoding" && whole.header("ETag")?.hasPrefix("\"") == true)
        let range = try http(server.port, "GET", "/files/page.html", headers: Self.gz + [("Range", "bytes=0-9")])
        #expect(range.status == 206 && range.text == String(page.prefix(10)) && range.header("Content-Encoding") == nil)
        let tiny = try http(server.port, "GET", "/files/tiny.html", headers: Self.gz)  // below gzip_min_length (20)
        #expect(tiny.text == "tiny\n" && tiny.header("Content-Encoding") == nil)
        let blob = try http(server.port, "GET", "/files/blob.bin", headers: Self.gz)  // not in gzip_types
        #expect(blob.body.count == 5000 && blob.header("Content-Encoding") == nil)
        let http10 = try HTTPSTests.run("sh", ["-c", "curl -s -0 -H 'Accept-Encoding: gzip' -D - -o /dev/null http://127.0.0.1:\(server.port)/files/page.html"])
        #expect(!http10.output.lowercased().contains("content-encoding"), "HTTP/1.0 clients get no gzip (nginx's gzip_http_version)")
    }

    @Test("gatewayd check: gzip settings without gzip, a bad type, a bad level, each at its line")
    func check() throws {
        let path = "/tmp/gatewayd-it-gzip-check-\(getpid()).toml"
        defer { unlink(path) }
        try """
            [server]
            bind = ["127.0.0.1:0"]
            [[route]]
            path = "/a"
            static = "/tmp"
            gzip_types = ["text/css"]
            [[route]]
            path = "/b"
            static = "/tmp"
            gzip = true
            gzip_types = ["text css"]
            gzip_comp_level = 12
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let out = try HTTPSTests.run(gatewaydBinary, ["check", "-c", path])
        #expect(out.status != 0)
        #expect(out.output.contains("\(path):6: route[0].gzip_types: has no effect without gzip = true"), "\(out.output)")
        #expect(out.output.contains("\(path):11: route[1].gzip_types: expected media types"), "\(out.output)")
        #expect(out.output.contains("\(path):12: route[1].gzip_comp_level"), "\(out.output)")
    }
}
