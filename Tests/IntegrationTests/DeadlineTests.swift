import Foundation
import GatewaySystem
import Testing
import Glibc

/// request_timeout (a hard deadline per request), the slow-request entry with the
/// kernel's view of the process, and X-Request-Start with the queue wait, under every
/// worker class, with a hosted libfcgi app, a flup app gatewayd only connects to, and a
/// CGI program.
@Suite("request_timeout, slow-request entries, X-Request-Start", .serialized)
struct DeadlineTests {
    static func config(cgiDir: String, externalSocket: String) -> String {
        """
        [cgi]
        timeout = 1
        kill_grace = 1
        [[app]]
        name = "c"
        command = ["\(HostedAppsTests.cApp)"]
        processes = 1
        request_timeout = 1
        slow_request = 0.3
        kill_grace = 1
        [[route]]
        path = "/c"
        app = "c"
        [[app]]
        name = "ext"
        connect = "unix:\(externalSocket)"
        max_conns = 1
        request_timeout = 1
        [[route]]
        path = "/ext"
        app = "ext"
        [[route]]
        path = "/cgi-bin"
        cgi = "\(cgiDir)"
        """
    }

    static func json(_ r: HTTPResponse) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    @Test("a hung app gets 504, its process replaced, a slow entry with its wchan; X-Request-Start reaches it", arguments: workerClasses)
    func deadlines(workerClass: String) throws {
        let cgiDir = "/tmp/gatewayd-it-deadline-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: cgiDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: cgiDir) }
        try "#!/bin/sh\nsleep 30\necho 'Content-Type: text/plain'\necho\necho late\n".write(toFile: cgiDir + "/slow.sh", atomically: true, encoding: .utf8)
        chmod(cgiDir + "/slow.sh", 0o755)
        let ext = try FastCGIApp(name: "flup", command: ["python3", HostedAppsTests.pythonApp])
        defer { ext.stop() }
        let server = try GatewaydServer(config: Self.config(cgiDir: cgiDir, externalSocket: ext.socketPath), workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let port = server.port

        // X-Request-Start (epoch microseconds when the request arrived; a client's own is
        // replaced) and the time it waited for its slot.
        let before = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let env = try Self.json(http(port, "GET", "/c/env", headers: [("X-Request-Start", "t=1")]))
        let after = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let start = try #require(env["HTTP_X_REQUEST_START"] as? String)
        let micros = try #require(Int64(start.dropFirst(2)), "\(start)")
        #expect(start.hasPrefix("t=") && micros >= before - 1_000_000 && micros <= after, "\(start) not in [\(before), \(after)]")
        let waited = try #require((env["GATEWAY_QUEUE_WAIT_US"] as? String).flatMap { Int($0) })
        #expect(waited >= 0 && waited < 1_000_000)

        // The hosted app sleeps past request_timeout: 504 soon after 1 s, a slow entry at
        // 0.3 s and one at the deadline, each with what the kernel shows, and then a new
        // process in its slot.
        let old = try #require(server.appPIDs("c-app").first)
        let t0 = Date()
        let hung = try http(port, "GET", "/c/sleep?ms=20000")
        #expect(hung.status == 504)
        #expect(Date().timeIntervalSince(t0) < 5)
        let log = server.errorLog
        #expect(log.contains("slow request: GET /c/sleep?ms=20000 app c slot 0 held 0.3"), "\(log)")
        #expect(log.contains("request_timeout (1.0 s) passed: GET /c/sleep?ms=20000 app c"))
        #expect(log.contains("pid \(old) state S (sleeping) wchan "))
        #expect(log.contains("ending process \(old) (slot 0)"))
        #expect(HostedAppsTests.eventually(10) { let p = server.appPIDs("c-app"); return p.count == 1 && p[0] != old },
                "\(server.appPIDs("c-app"))")
        #expect(try http(port, "GET", "/c/hello").status == 200)

        // An app gatewayd only connects to: 504, FCGI_ABORT_REQUEST and a closed
        // connection (its processes are not gatewayd's to inspect or end).
        let slowExt = try http(port, "GET", "/ext/sleep?ms=3000")
        #expect(slowExt.status == 504)
        #expect(server.errorLog.contains("request_timeout (1.0 s) passed: GET /ext/sleep?ms=3000 app ext"))
        #expect(server.errorLog.contains("a connect app (unix:\(ext.socketPath)): its processes are not gatewayd's to inspect"), "\(server.errorLog)")
        #expect(server.errorLog.contains("aborted the request (FCGI_ABORT_REQUEST)"))

        // A CGI program past cgi.timeout: 504 and the same kind of entry.
        let cgi = try http(port, "GET", "/cgi-bin/slow.sh")
        #expect(cgi.status == 504)
        #expect(server.errorLog.contains("cgi.timeout (1.0 s) passed: GET /cgi-bin/slow.sh ran 1."), "\(server.errorLog)")
        #expect(server.errorLog.contains("wchan "))
    }
}
