import Foundation
import Testing
import Glibc

/// Reloads, TTOU, max_requests recycling and a graceful stop under keep-alive load lose
/// no request (issue #8 A; gunicorn #3394). The load is Apps/keepalive_load.py: clients
/// that keep their connections and reconnect only after a Connection: close.
@Suite("drains lose no request under keep-alive load")
struct DrainTests {
    /// A running keepalive_load.py; `finish()` stops it and returns its counts.
    final class Load: Sendable {
        let process = Process()
        let out = Foundation.Pipe()
        let dir: String
        var stopFile: String { dir + "/stop" }
        var signalFile: String { dir + "/signalled" }

        init(port: Int, path: String, connections: Int = 4, stopOK: Bool = false, tls: Bool = false) throws {
            dir = "/tmp/gatewayd-it-load-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", repositoryRoot + "/Tests/IntegrationTests/Apps/keepalive_load.py",
                                 "--port", String(port), "--path", path, "--connections", String(connections),
                                 "--stop-file", dir + "/stop", "--signal-file", dir + "/signalled",
                                 "--ready-file", dir + "/ready"] + (stopOK ? ["--stop-ok"] : []) + (tls ? ["--tls"] : [])
            process.standardOutput = out
            try process.run()
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: dir + "/ready") && Date() < deadline && process.isRunning { usleep(10_000) }
        }

        func finish() throws -> (requests: Int, failures: Int, closes: Int, errors: [String]) {
            _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dir)
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TestFailure("keepalive_load.py printed \(String(decoding: data, as: UTF8.self))")
            }
            return (o["requests"] as? Int ?? 0, o["failures"] as? Int ?? -1, o["closes"] as? Int ?? 0, o["errors"] as? [String] ?? [])
        }
    }

    static func config() -> String {
        """
        [[app]]
        name = "c"
        command = ["\(repositoryRoot)/apps/bin/c-app"]
        processes = 4
        keep_conn = true
        [[route]]
        path = "/c"
        app = "c"
        """
    }

    /// Error-log lines above info (the drains must not warn about anything).
    static func loudLines(_ log: String) -> [Substring] {
        log.split(separator: "\n").filter { l in ["[NOTICE]", "[WARNING]", "[ERROR]", "[CRITICAL]"].contains { l.contains($0) } }
    }

    @Test("10 HUPs (2 and 3 workers), a TTOU and max_requests recycling: 0 failed requests", arguments: workerClasses)
    func reloadsUnderLoad(workerClass: String) throws {
        let extra = "max_requests = 100\nmax_requests_jitter = 50\nkeepalive = 2\nthreads = 4"
        let server = try GatewaydServer(config: Self.config(), server: extra, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let load = try Load(port: server.port, path: "/c/hello")
        for i in 0..<10 {
            try server.writeConfig(Self.config(), server: extra, workers: i % 2 == 0 ? 3 : 2)
            server.signal(SIGHUP)
            usleep(400_000)
        }
        server.signal(SIGTTOU)
        usleep(1_000_000)
        // Go on until a worker has retired at max_requests and been replaced, under load.
        let deadline = Date().addingTimeInterval(15)
        while !server.errorLog.contains("retired; starting another") && Date() < deadline { usleep(100_000) }
        usleep(300_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(workerClass): \(result.errors)")
        #expect(result.requests > 200, "\(workerClass): only \(result.requests) requests")
        #expect(result.closes > 0, "kept connections were ended by Connection: close")
        let log = server.errorLog
        #expect(log.components(separatedBy: "HUP: configuration reloaded").count == 11)
        #expect(log.contains("max_requests (") && log.contains("retired; starting another"), "workers were recycled during the load")
        #expect(Self.loudLines(log).isEmpty, "\(Self.loudLines(log).prefix(10))")
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
    }

    @Test("TERM under keep-alive load: every request sent is answered, then connections are refused", arguments: workerClasses)
    func stopUnderLoad(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config(), server: "keepalive = 2\nthreads = 4", workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let load = try Load(port: server.port, path: "/c/hello", stopOK: true)
        usleep(500_000)
        _ = FileManager.default.createFile(atPath: load.signalFile, contents: nil)
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 15) == 0)
        let result = try load.finish()
        #expect(result.failures == 0, "\(workerClass): \(result.errors)")
        #expect(result.requests > 50)
        #expect(Self.loudLines(server.errorLog).isEmpty, "\(Self.loudLines(server.errorLog).prefix(10))")
    }
}
