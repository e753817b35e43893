import Foundation
import Glibc
import GatewaySystem
import Testing

/// One script of requests through every worker class: the access-log lines (status and
/// bytes) and the metrics must be the same. The engine makes the decisions once; this
/// checks that the drivers report them alike, including a client that leaves mid-response.
@Suite("worker class parity", .serialized)
struct ParityTests {
    struct Line: Hashable, CustomStringConvertible {
        let request: String
        let status: Int
        let bytes: Int?  // nil where the body cannot be the same (it names a port or a pid)
        var description: String { "\(request) \(status) \(bytes.map(String.init) ?? "*")" }
    }

    /// The operations suite's C app, CGI directory and static site, and an app nobody serves.
    static func config(_ site: String) -> String {
        OperationsTests.config(site) + """

        [[app]]
        name = "gone"
        connect = "unix:/tmp/gatewayd-parity-nobody-\(getpid()).sock"
        [[route]]
        path = "/gone"
        app = "gone"
        """
    }

    /// Runs the script; returns the access-log lines and the requests_total samples.
    static func run(_ workerClass: String, site: String) throws -> (lines: [Line], metrics: [String]) {
        signal(SIGPIPE, SIG_IGN)
        let server = try GatewaydServer(config: config(site), server: "threads = 4\nmetrics_path = \"/metrics\"", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let p = server.port
        let index = try http(p, "GET", "/index.html")
        let etag = index.header("ETag") ?? "-"
        let steps: [(String, String, [(String, String)], [UInt8])] = [
            ("GET", "/c/hello", [], []),
            ("HEAD", "/c/hello", [], []),
            ("GET", "/c/status?code=418", [], []),
            ("POST", "/c/echo", [], [UInt8](repeating: 0x61, count: 100_000)),  // past the 64 KiB in memory
            ("GET", "/index.html", [("Range", "bytes=0-1")], []),
            ("GET", "/index.html", [("If-None-Match", etag)], []),
            ("GET", "/missing", [], []),
            ("GET", "/gone/x", [], []),
            ("GET", "/cgi-bin/nph-hello.sh", [], []),
            ("POST", "/cgi-bin/echo.py", [], Array("a=1".utf8)),
        ]
        for (method, path, headers, body) in steps { _ = try http(p, method, path, headers: headers, body: body) }
        // A client that leaves after the head of a 50 MB response.
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: p, timeoutMilliseconds: 5000)
        try fd.writeAll(Array("GET /c/stream?bytes=50000000 HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = try fd.waitReadable(timeoutMilliseconds: 5000)
        _ = try fd.read(into: &buffer, from: 0)
        try fd.close()

        var raw: [String] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            raw = server.accessLog.split(separator: "\n").map(String.init)
            if raw.count >= steps.count + 2 { break }
            usleep(50_000)
        }
        let exact: Set<String> = ["/c/hello", "/c/status?code=418", "/index.html", "/missing", "/gone/x", "/cgi-bin/nph-hello.sh"]
        let lines = raw.compactMap { line -> Line? in
            guard let m = line.firstMatch(of: /"([A-Z]+) (\S+) HTTP\/1\.1" (\d{3}) (\d+)/) else { return nil }
            let target = String(m.2)
            return Line(request: "\(m.1) \(target)", status: Int(m.3)!, bytes: exact.contains(target) ? Int(m.4)! : nil)
        }
        let metrics = try http(p, "GET", "/metrics").text.split(separator: "\n")
            .filter { $0.hasPrefix("gatewayd_requests_total{") }.map(String.init).sorted()
        return (lines, metrics)
    }

    @Test("the same requests give the same access-log lines and metrics in sync, thread and epoll")
    func sameLinesInEveryClass() throws {
        let site = try StaticDirectory()
        defer { site.remove() }
        try site.add("index.html", Array("parity\n".utf8))
        var results: [String: (lines: [Line], metrics: [String])] = [:]
        for w in workerClasses { results[w] = try Self.run(w, site: site.path) }
        let sync = try #require(results["sync"])
        #expect(sync.lines.count == 12, "\(sync.lines)")
        #expect(sync.lines.contains { $0.request == "GET /c/stream?bytes=50000000" && $0.status == 499 }, "\(sync.lines)")
        #expect(sync.lines.contains { $0.request == "GET /gone/x" && $0.status == 502 })
        #expect(sync.metrics.contains { $0.contains("status=\"499\"") }, "\(sync.metrics)")
        for w in ["thread", "epoll"] {
            let other = try #require(results[w])
            #expect(Set(other.lines) == Set(sync.lines), "\(w) differs from sync: \(Set(other.lines).symmetricDifference(Set(sync.lines)))")
            // The metrics page is read last, so its own request is not in it yet.
            #expect(other.metrics == sync.metrics, "\(w): \(other.metrics) against sync: \(sync.metrics)")
        }
    }
}
