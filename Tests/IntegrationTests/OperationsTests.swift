import Foundation
import GatewaySystem
import Testing
import Glibc

/// Operations: /metrics, parsed by prometheus_client's own text parser, and the access
/// log in both formats with the request and upstream times.
@Suite("Metrics and access logs", .serialized)
struct OperationsTests {
    static func config(_ site: String) -> String {
        """
        [[app]]
        name = "c"
        command = ["\(repositoryRoot)/apps/bin/c-app"]
        processes = 2
        [[route]]
        path = "/c"
        app = "c"
        [[route]]
        path = "/cgi-bin"
        cgi = "\(repositoryRoot)/apps/cgi"
        [[route]]
        path = "/"
        static = "\(site)"
        """
    }

    /// Parses /metrics with prometheus_client and prints the samples as JSON lines.
    static let parser = """
    import json, sys, urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    r = urllib.request.urlopen(sys.argv[1])
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
    for family in text_string_to_metric_families(r.read().decode()):
        for s in family.samples:
            print(json.dumps({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
    """

    struct Sample: Decodable { let family: String; let type: String; let name: String; let labels: [String: String]; let value: Double }

    func metrics(_ port: Int) throws -> [Sample] {
        // The python3 that scripts/setup installed prometheus_client for (the one in PATH).
        let r = try runProgram("/usr/bin/env", ["python3", "-c", Self.parser, "http://127.0.0.1:\(port)/metrics"])
        guard r.status == 0 else { throw TestFailure("prometheus_client could not parse /metrics: \(r.stderr)") }
        return try r.stdout.split(separator: "\n").map { try JSONDecoder().decode(Sample.self, from: Data($0.utf8)) }
    }

    @Test("/metrics: off by default; requests by route and status, latency, slots, queue waits, restarts", arguments: ["sync", "epoll"])
    func prometheus(workerClass: String) throws {
        let site = try StaticDirectory()
        defer { site.remove() }
        try site.add("index.html", Array("hi\n".utf8))
        let off = try GatewaydServer(config: Self.config(site.path), workers: 1, workerClass: workerClass)
        #expect(try http(off.port, "GET", "/metrics").status == 404, "off unless metrics_path is set")
        off.stop()

        let server = try GatewaydServer(config: Self.config(site.path), server: "metrics_path = \"/metrics\"", workers: 2, workerClass: workerClass)
        defer { server.stop() }
        for _ in 0..<5 { #expect(try http(server.port, "GET", "/c/hello").status == 200) }
        for _ in 0..<3 { #expect(try http(server.port, "GET", "/index.html").status == 200) }
        #expect(try http(server.port, "GET", "/nothing-here").status == 404)
        #expect(try http(server.port, "GET", "/cgi-bin/env.sh").status == 200)
        #expect(try http(server.port, "POST", "/metrics").status == 405)
        // An app process dies: a restart to count.
        let before = server.appPIDs("c-app")
        if let victim = before.first { kill(victim, SIGKILL) }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !(server.appPIDs("c-app").count == 2 && Set(server.appPIDs("c-app")) != Set(before)) { usleep(50_000) }

        let samples = try metrics(server.port)
        func value(_ name: String, _ labels: [String: String]) -> Double? {
            samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
        }
        #expect(value("gatewayd_requests_total", ["route": "/c", "status": "200"]) == 5)
        #expect(value("gatewayd_requests_total", ["route": "/", "status": "200"]) == 3)
        #expect(value("gatewayd_requests_total", ["route": "unrouted", "status": "404"]) == nil, "/ catches everything here")
        #expect(value("gatewayd_requests_total", ["route": "/", "status": "404"]) == 1)
        #expect(value("gatewayd_requests_total", ["route": "/cgi-bin", "status": "200"]) == 1)
        #expect(value("gatewayd_requests_total", ["route": "metrics", "status": "405"]) == 1)
        #expect(value("gatewayd_request_duration_seconds_count", ["route": "/c"]) == 5)
        #expect(value("gatewayd_request_duration_seconds_bucket", ["route": "/c", "le": "+Inf"]) == 5)
        #expect((value("gatewayd_request_duration_seconds_sum", ["route": "/c"]) ?? -1) >= 0)
        #expect(samples.contains { $0.family == "gatewayd_request_duration_seconds" && $0.type == "histogram" })
        #expect(value("gatewayd_app_slots", ["app": "c", "state": "idle"]) == 2)
        #expect(value("gatewayd_app_slots", ["app": "c", "state": "busy"]) == 0)
        #expect(value("gatewayd_app_processes", ["app": "c"]) == 2)
        #expect(value("gatewayd_app_queue_wait_seconds_count", ["app": "c"]) == 5)
        #expect((value("gatewayd_app_restarts_total", ["app": "c"]) ?? 0) >= 1)
        #expect(value("gatewayd_workers", [:]) == 2)
    }

    @Test("access log: combined and JSON, with request and upstream times", arguments: ["combined", "json"])
    func accessLog(format: String) throws {
        let site = try StaticDirectory()
        defer { site.remove() }
        try site.add("index.html", Array("hi\n".utf8))
        let server = try GatewaydServer(config: "[log]\naccess_log_format = \"\(format)\"\n" + Self.config(site.path), workers: 1)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/c/hello?x=1", headers: [("User-Agent", "tester \"quoted\""), ("Referer", "http://r/")]).status == 200)
        #expect(try http(server.port, "GET", "/index.html").status == 200)
        var lines: [String] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && lines.count < 2 {
            lines = server.accessLog.split(separator: "\n").map(String.init)
            usleep(20_000)
        }
        #expect(lines.count == 2, "\(lines)")
        guard lines.count == 2 else { return }
        if format == "combined" {
            // nginx's combined, then the request time and the upstream time ("-": none).
            let app = try #require(lines[0].wholeMatch(of: /127\.0\.0\.1 - - \[[^\]]+\] "GET \/c\/hello\?x=1 HTTP\/1\.1" 200 \d+ "http:\/\/r\/" "tester \\"quoted\\"" (\d+\.\d{3}) (\d+\.\d{3})/))
            #expect(Double(app.2)! <= Double(app.1)!)
            #expect(lines[1].wholeMatch(of: /127\.0\.0\.1 - - \[[^\]]+\] "GET \/index\.html HTTP\/1\.1" 200 \d+ "-" "-" \d+\.\d{3} -/) != nil, "\(lines[1])")
        } else {
            let app = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(app["uri"] as? String == "/c/hello?x=1" && app["status"] as? Int == 200)
            #expect(app["user_agent"] as? String == "tester \"quoted\"" && app["remote_addr"] as? String == "127.0.0.1")
            #expect(app["request_time"] is Double && app["upstream_time"] is Double && app["request_id"] is String)
            let file = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
            #expect(file["upstream_time"] == nil && file["bytes_sent"] as? Int ?? 0 > 3)
        }
    }
}
