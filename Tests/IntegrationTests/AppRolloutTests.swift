import Foundation
import Testing
import Glibc

/// New app code without downtime: a HUP with a changed [[app]] command replaces the
/// hosted processes one at a time under keep-alive load, with no failed request, no
/// 502 and no 503; the answers switch from the old build to the new.
@Suite("rolling app restarts", .serialized)
struct AppRolloutTests {
    static func config(_ command: String) -> String {
        """
        [[app]]
        name = "c"
        command = [\(command)]
        env_copy = ["PATH", "HOME"]
        processes = 4
        keep_conn = true
        [[route]]
        path = "/c"
        app = "c"
        """
    }

    static let cApp = "\"\(HostedAppsTests.cApp)\""
    static let pythonApp = "\"python3\", \"\(HostedAppsTests.pythonApp)\""

    @Test("HUP with a new command under load: 0 failed requests, old answers then new", arguments: workerClasses)
    func hupRollsTheApp(workerClass: String) throws {
        let extra = "keepalive = 2\nthreads = 4"
        let server = try GatewaydServer(config: Self.config(Self.cApp), server: extra, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/c/hello").text == "Hello from C (libfcgi)\n")
        let old = Set(server.appPIDs("c-app"))
        #expect(old.count == 4)
        let load = try DrainTests.Load(port: server.port, path: "/c/hello")
        usleep(300_000)
        try server.writeConfig(Self.config(Self.pythonApp), server: extra, workers: 2)
        server.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(30)
        while !server.errorLog.contains("app c: every process replaced") && Date() < deadline { usleep(100_000) }
        usleep(300_000)
        let result = try load.finish()
        #expect(server.errorLog.contains("app c: every process replaced"), "\(server.errorLog)")
        #expect(result.failures == 0, "\(workerClass): \(result.errors) \(server.errorLog.suffix(3000))")
        #expect(result.requests > 100)
        #expect(!server.accessLog.contains("\" 502 ") && !server.accessLog.contains("\" 503 "))
        // Only the new build answers, and none of the old processes is left.
        for _ in 0..<8 { #expect(try http(server.port, "GET", "/c/hello").text == "Hello from Python (flup)\n") }
        #expect(server.appPIDs("c-app").isEmpty && server.appPIDs("app.py").count == 4)
        #expect(DrainTests.loudLines(server.errorLog).isEmpty, "\(DrainTests.loudLines(server.errorLog).prefix(10))")
    }

    @Test("reload-app after a deploy: every process replaced under load, through the control socket")
    func reloadAppCommand() throws {
        let server = try GatewaydServer(config: Self.config(Self.cApp), server: "keepalive = 2", workers: 2, workerClass: "epoll")
        defer { server.stop() }
        let old = Set(server.appPIDs("c-app"))
        #expect(old.count == 4)
        let load = try DrainTests.Load(port: server.port, path: "/c/hello")
        usleep(300_000)
        let r = try runGatewayd(["reload-app", "c", "-c", server.configPath])
        #expect(r.status == 0 && r.stdout.hasPrefix("ok: replacing the 4 processes of app c one at a time"), "\(r)")
        let deadline = Date().addingTimeInterval(30)
        while !server.errorLog.contains("app c: every process replaced (reload-app)") && Date() < deadline { usleep(100_000) }
        usleep(300_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(result.errors)")
        let now = Set(server.appPIDs("c-app"))
        #expect(now.count == 4 && now.isDisjoint(with: old), "\(old) -> \(now)")
        // What it refuses, with a clear line and exit 1.
        let unknown = try runGatewayd(["reload-app", "nope", "-c", server.configPath])
        #expect(unknown.status == 1 && unknown.stdout.hasPrefix("error: no app named nope (apps: c)"), "\(unknown)")
    }
}
