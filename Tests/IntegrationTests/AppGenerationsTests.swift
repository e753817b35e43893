import Foundation
import Testing
import Glibc

/// A HUP that adds, removes or resizes apps: the new app starts, the removed one serves
/// the old workers until they are gone and then stops, a resized one gets its new
/// processes beside the old; under keep-alive load on the apps that stay, nothing fails.
@Suite("apps added, removed and resized by HUP", .serialized)
struct AppGenerationsTests {
    static func app(_ name: String, _ command: String, processes: Int) -> String {
        """
        [[app]]
        name = "\(name)"
        command = [\(command)]
        env_copy = ["PATH", "HOME"]
        processes = \(processes)
        [[route]]
        path = "/\(name)"
        app = "\(name)"
        """
    }

    static let cApp = "\"\(HostedAppsTests.cApp)\""
    static let pythonApp = "\"python3\", \"\(HostedAppsTests.pythonApp)\""

    @Test("HUP: an app added, one removed, one resized from 2 to 3 processes, under load: 0 failed", arguments: ["thread", "epoll"])
    func hup(workerClass: String) throws {
        let extra = "keepalive = 2\nthreads = 4\nstatus_path = \"/status\""
        let before = Self.app("c", Self.cApp, processes: 2) + "\n" + Self.app("old", Self.pythonApp, processes: 1)
        let server = try GatewaydServer(config: before, server: extra, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/old/hello").status == 200)
        #expect(try http(server.port, "GET", "/new/hello").status == 404)
        let oldC = Set(server.appPIDs("c-app"))
        let oldPython = Set(server.appPIDs("app.py"))
        #expect(oldC.count == 2 && oldPython.count == 1)
        let load = try DrainTests.Load(port: server.port, path: "/c/hello")
        usleep(300_000)
        let after = Self.app("c", Self.cApp, processes: 3) + "\n" + Self.app("new", Self.pythonApp, processes: 1)
        try server.writeConfig(after, server: extra, workers: 2)
        server.signal(SIGHUP)
        // The new app answers; the removed one's route is gone with the old workers.
        #expect(HostedAppsTests.eventually(10) { (try? http(server.port, "GET", "/new/hello").status) == 200 })
        #expect(HostedAppsTests.eventually(10) { (try? http(server.port, "GET", "/old/hello").status) == 404 })
        // The old generation's processes stop once its workers are gone.
        #expect(HostedAppsTests.eventually(15) { server.errorLog.contains("of the previous configuration stopped") }, "\(server.errorLog)")
        usleep(300_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(workerClass): \(result.errors)")
        #expect(result.requests > 100)
        #expect(!server.accessLog.contains("\" 502 ") && !server.accessLog.contains("\" 503 "))
        let nowC = Set(server.appPIDs("c-app"))
        let nowPython = Set(server.appPIDs("app.py"))
        #expect(nowC.count == 3 && nowC.isDisjoint(with: oldC), "\(oldC) -> \(nowC)")
        #expect(nowPython.count == 1 && nowPython.isDisjoint(with: oldPython), "\(oldPython) -> \(nowPython)")
        #expect(server.errorLog.contains("HUP: app old removed"), "\(server.errorLog)")
        #expect(server.errorLog.contains("HUP: app c laid out anew"))
        #expect(server.errorLog.contains("HUP: app new starts"))
        let status = try HostedAppsTests.appStatus(server.port, "c")
        #expect(status["processes"] as? Int == 3, "\(status)")
        #expect(DrainTests.loudLines(server.errorLog).isEmpty, "\(DrainTests.loudLines(server.errorLog).prefix(10))")
    }

    @Test("HUP that only reorders and keeps apps: the same processes serve on")
    func keep() throws {
        let a = Self.app("c", Self.cApp, processes: 2), b = Self.app("py", Self.pythonApp, processes: 1)
        let server = try GatewaydServer(config: a + "\n" + b, workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let pids = Set(server.appPIDs("c-app") + server.appPIDs("app.py"))
        #expect(pids.count == 3)
        try server.writeConfig(b + "\n" + a, workers: 1)
        server.signal(SIGHUP)
        #expect(HostedAppsTests.eventually(10) { server.errorLog.contains("HUP: configuration reloaded") })
        usleep(500_000)
        for _ in 0..<5 {
            #expect(try http(server.port, "GET", "/c/hello").text == "Hello from C (libfcgi)\n")
            #expect(try http(server.port, "GET", "/py/hello").text == "Hello from Python (flup)\n")
        }
        #expect(Set(server.appPIDs("c-app") + server.appPIDs("app.py")) == pids)
    }
}
