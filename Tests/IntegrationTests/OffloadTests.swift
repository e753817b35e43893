import Foundation
import GatewaySystem
import Testing
import Glibc

/// X-Accel-Redirect and X-Sendfile from PHP on a real php-fpm, under every worker class:
/// the app names a file, gatewayd sends it (sendfile, Range, conditionals) while the
/// app's only process is already free, and nothing outside the allowed places is served.
@Suite("X-Accel-Redirect and X-Sendfile through php-fpm", .serialized)
struct OffloadTests {
    /// A scratch tree: site/dl.php (the app), files/ (what it may hand over), and a
    /// secret beside files/ that no answer may reach.
    final class Tree {
        let dir = "/tmp/gatewayd-it-offload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var site: String { dir + "/site" }
        var files: String { dir + "/files" }
        let big: [UInt8]

        init() throws {
            try FileManager.default.createDirectory(atPath: dir + "/site", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/files/sub", withIntermediateDirectories: true)
            var bytes = [UInt8](repeating: 0, count: 50 << 20)
            var x: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in stride(from: 0, to: bytes.count, by: 8) {  // xorshift: not compressible, not all zeros
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                withUnsafeBytes(of: x.littleEndian) { for j in 0..<8 { bytes[i + j] = $0[j] } }
            }
            big = bytes
            try Data(big).write(to: URL(fileURLWithPath: files + "/big.bin"))
            try "a note\n".write(toFile: files + "/sub/note.txt", atomically: true, encoding: .utf8)
            try "SECRET\n".write(toFile: dir + "/secret.txt", atomically: true, encoding: .utf8)
            // ?a=URI answers X-Accel-Redirect, ?s=PATH X-Sendfile; anything else is a page.
            try """
            <?php
            if (isset($_GET['a'])) {
                header('Content-Type: application/octet-stream');
                header('Content-Disposition: attachment; filename="data.bin"');
                header('X-Accel-Redirect: ' . $_GET['a']);
                echo "this body is dropped";
            } elseif (isset($_GET['s'])) {
                header('Content-Type:');  // empty: the type comes from the file's name
                header('X-Sendfile: ' . $_GET['s']);
            } else {
                echo "php answered\\n";
            }
            """.write(toFile: site + "/dl.php", atomically: true, encoding: .utf8)
            // A CGI program hands over the same way: ?s=PATH is X-Sendfile, else X-Accel-Redirect.
            try FileManager.default.createDirectory(atPath: dir + "/cgi", withIntermediateDirectories: true)
            try """
            #!/bin/sh
            case "$QUERY_STRING" in
              s=*) printf 'X-Sendfile: %s\\r\\n\\r\\n' "${QUERY_STRING#s=}" ;;
              *) printf 'X-Accel-Redirect: /protected/sub/note.txt\\r\\n\\r\\n' ;;
            esac
            """.write(toFile: dir + "/cgi/hand.sh", atomically: true, encoding: .utf8)
            chmod(dir + "/cgi/hand.sh", 0o755)
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func config(_ socket: String) -> String {
            """
            [cgi]
            sendfile_roots = ["\(files)"]
            [[app]]
            name = "fpm"
            connect = "unix:\(socket)"
            max_conns = 1
            root = "\(site)"
            sendfile_roots = ["\(files)"]
            [[route]]
            extension = ".php"
            app = "fpm"
            [[route]]
            path = "/protected"
            static = "\(files)"
            internal = true
            [[route]]
            path = "/cgi-bin"
            cgi = "\(dir)/cgi"
            """
        }
    }

    @Test("a 50 MiB file handed over, ranges, conditionals, the app free, traversal refused", arguments: workerClasses)
    func offload(workerClass: String) throws {
        let tree = try Tree()
        let fpm = try PHPFPM(children: 1)
        defer { fpm.stop() }
        let server = try GatewaydServer(config: tree.config(fpm.socketPath), workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let port = server.port

        // The internal route is not there for clients.
        #expect(try http(port, "GET", "/protected/big.bin").status == 404)

        // The whole file, by curl, byte for byte; the app's Content-Type and
        // Content-Disposition kept, its body dropped.
        let out = tree.dir + "/got.bin"
        let got = try runProgram(curl, ["-s", "--max-time", "60", "-o", out, "-D", "-",
                                        "http://127.0.0.1:\(port)/dl.php?a=/protected/big.bin"])
        let head = got.stdout.lowercased()
        #expect(head.hasPrefix("http/1.1 200"), "\(got.stdout)")
        #expect(head.contains("content-length: \(50 << 20)\r\n"))
        #expect(head.contains("content-type: application/octet-stream\r\n"))
        #expect(head.contains("content-disposition: attachment; filename=\"data.bin\"\r\n"))
        #expect(head.contains("etag:") && head.contains("accept-ranges: bytes"))
        #expect(try runProgram("/usr/bin/cmp", [out, tree.files + "/big.bin"]).status == 0, "the client got other bytes")

        // A range; a conditional GET; HEAD; a POST is served as a GET.
        let part = try http(port, "GET", "/dl.php?a=/protected/big.bin", headers: [("Range", "bytes=1000-1999")])
        #expect(part.status == 206 && part.body == Array(tree.big[1000...1999]))
        #expect(part.header("Content-Range") == "bytes 1000-1999/\(50 << 20)")
        let etag = try #require(part.header("ETag"))
        #expect(try http(port, "GET", "/dl.php?a=/protected/big.bin", headers: [("If-None-Match", etag)]).status == 304)
        let headOnly = try runProgram(curl, ["-s", "--max-time", "10", "-I", "http://127.0.0.1:\(port)/dl.php?a=/protected/big.bin"])
        #expect(headOnly.stdout.lowercased().hasPrefix("http/1.1 200") && headOnly.stdout.lowercased().contains("content-length: \(50 << 20)\r\n"))
        let post = try http(port, "POST", "/dl.php?a=/protected/sub/note.txt", body: Array("x=1".utf8))
        #expect(post.status == 200 && post.text == "a note\n")

        // X-Sendfile under the app's sendfile_roots.
        let sent = try http(port, "GET", "/dl.php?s=\(tree.files)/sub/note.txt")
        #expect(sent.status == 200 && sent.text == "a note\n" && sent.header("Content-Type") == "text/plain; charset=utf-8")

        // The app's only process is free while a slow client takes the file.
        let slow = try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
        defer { try? slow.close() }
        try slow.writeAll(Array("GET /dl.php?a=/protected/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var first = [UInt8](repeating: 0, count: 4096)
        #expect(try slow.waitReadable(timeoutMilliseconds: 10_000))
        #expect((try slow.read(into: &first, from: 0) ?? 0) > 0)
        let started = Date()
        let page = try http(port, "GET", "/dl.php", timeout: 10)
        #expect(page.status == 200 && page.text == "php answered\n", "php-fpm's only child was still held by the download")
        #expect(Date().timeIntervalSince(started) < 5)

        // Traversal and places outside the allowed ones: 502, never the file.
        let refused = [
            "/dl.php?a=/protected/../secret.txt", "/dl.php?a=/protected/%252e%252e/secret.txt",
            "/dl.php?a=/protected/..%252fsecret.txt", "/dl.php?a=/secret.txt", "/dl.php?a=/dl.php",
            "/dl.php?s=\(tree.files)/../secret.txt", "/dl.php?s=\(tree.dir)/secret.txt", "/dl.php?s=/etc/passwd",
            "/dl.php?s=sub/note.txt",
        ]
        for path in refused {
            let r = try http(port, "GET", path)
            #expect(r.status == 502, "\(path): \(r.status)")
            #expect(!r.text.contains("SECRET") && !r.text.contains("root:"), "\(path)")
        }
        #expect(server.errorLog.contains("not under a route marked internal"))
        #expect(server.errorLog.contains("not under fpm's sendfile_roots"))
        // A CGI program hands over too, under [cgi]'s roots only.
        #expect(try http(port, "GET", "/cgi-bin/hand.sh").text == "a note\n")
        #expect(try http(port, "GET", "/cgi-bin/hand.sh?s=\(tree.files)/sub/note.txt").text == "a note\n")
        #expect(try http(port, "GET", "/cgi-bin/hand.sh?s=\(tree.dir)/secret.txt").status == 502)
        // A file the route does not have is a 404, as on the static route itself.
        #expect(try http(port, "GET", "/dl.php?a=/protected/missing.bin").status == 404)
    }
}
