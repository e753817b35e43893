import Foundation
import Testing
import Glibc

/// gzip_static on a static route (nginx's): a stored `.gz` sent as it is to clients that
/// accept gzip, with ranges on the stored bytes; `Vary: Accept-Encoding` on every answer.
@Suite("gzip_static")
struct GzipStaticTests {
    @Test("the .gz twin for gzip clients (curl --compressed, Python's gzip), the file for others, ranges on the stored bytes",
          arguments: workerClasses)
    func gzipStatic(workerClass: String) throws {
        let dir = "/tmp/gatewayd-it-gz-\(getpid())-\(workerClass)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = String(repeating: "gzip_static serves the stored twin. ", count: 400)
        try text.write(toFile: dir + "/page.txt", atomically: true, encoding: .utf8)
        _ = try HTTPSTests.run("python3", ["-c", "import gzip,sys; open(sys.argv[1]+'.gz','wb').write(gzip.compress(open(sys.argv[1],'rb').read()))",
                                           dir + "/page.txt"])
        try "no twin\n".write(toFile: dir + "/plain.txt", atomically: true, encoding: .utf8)
        let stored = try #require(FileManager.default.contents(atPath: dir + "/page.txt.gz"))
        let server = try GatewaydServer(config: "[[route]]\npath = \"/s\"\nstatic = \"\(dir)\"\ngzip_static = true\n", workers: 1,
                                        workerClass: workerClass)
        defer { server.stop() }
        let gz = try http(server.port, "GET", "/s/page.txt", headers: [("Accept-Encoding", "gzip, br")])
        #expect(gz.status == 200 && gz.header("Content-Encoding") == "gzip" && gz.header("Vary") == "Accept-Encoding")
        #expect(gz.header("Content-Type")?.hasPrefix("text/plain") == true)
        #expect(Data(gz.body) == stored)
        // curl --compressed decodes it, and Python's gzip module finds the original in the raw bytes.
        let url = "http://127.0.0.1:\(server.port)/s/page.txt"
        #expect(try HTTPSTests.run("curl", ["-s", "--compressed", url]).output == text)
        let decoded = try HTTPSTests.run("sh", ["-c", "curl -s -H 'Accept-Encoding: gzip' \(url) | python3 -c "
                                                      + "'import gzip, sys; sys.stdout.write(gzip.decompress(sys.stdin.buffer.read()).decode())'"]).output
        #expect(decoded == text)
        let plain = try http(server.port, "GET", "/s/page.txt")
        #expect(plain.header("Content-Encoding") == nil && plain.header("Vary") == "Accept-Encoding" && plain.text == text)
        let refused = try http(server.port, "GET", "/s/page.txt", headers: [("Accept-Encoding", "gzip;q=0")])
        #expect(refused.header("Content-Encoding") == nil && refused.text == text)
        // A range is of the stored (compressed) bytes; the two have different ETags.
        let range = try http(server.port, "GET", "/s/page.txt", headers: [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")])
        #expect(range.status == 206 && Data(range.body) == stored.prefix(10) && range.header("Content-Encoding") == "gzip")
        #expect(gz.header("ETag") != plain.header("ETag"))
        // No twin: the file, still with Vary.
        let single = try http(server.port, "GET", "/s/plain.txt", headers: [("Accept-Encoding", "gzip")])
        #expect(single.text == "no twin\n" && single.header("Content-Encoding") == nil && single.header("Vary") == "Accept-Encoding")
    }
}
