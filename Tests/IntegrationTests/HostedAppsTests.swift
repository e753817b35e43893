import Foundation
import GatewaySystem
import Testing
import Glibc

/// Hosted apps (`command`): gatewayd starts the C (libfcgi), Swift (libfcgi), Python
/// (flup) and PHP (php-cgi) sample apps itself, supervises them and queues requests
/// for their slots. Every test runs the real binary and the real apps.
@Suite("hosted apps", .serialized)
struct HostedAppsTests {
    static let cApp = repositoryRoot + "/apps/bin/c-app"
    /// The C app hosted with two processes, at /c (many suites' site).
    static let cAppAtC = "[[app]]\nname = \"c\"\ncommand = [\"\(cApp)\"]\nprocesses = 2\n[[route]]\npath = \"/c\"\napp = \"c\"\n"
    static let swiftApp = repositoryRoot + "/.build/debug/swift-app"
    static let pythonApp = repositoryRoot + "/apps/python/app.py"

    /// One hosted app `name` on route /`name`.
    static func app(_ name: String, _ command: [String], _ extra: String = "") -> String {
        let cmd = command.map { "\"\($0)\"" }.joined(separator: ", ")
        return "[[app]]\nname = \"\(name)\"\ncommand = [\(cmd)]\nenv_copy = [\"PATH\", \"HOME\"]\n\(extra)\n[[route]]\npath = \"/\(name)\"\napp = \"\(name)\"\n"
    }

    static func status(_ port: Int) throws -> [String: Any] {
        let r = try http(port, "GET", "/status?json")
        return try #require(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    static func appStatus(_ port: Int, _ name: String) throws -> [String: Any] {
        let apps = try #require(status(port)["apps"] as? [[String: Any]])
        return try #require(apps.first { $0["name"] as? String == name })
    }

    /// Polls `condition` for up to `timeout` seconds.
    static func eventually(_ timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test func staticProcessesOfEveryLanguageServe() throws {
        let config = Self.app("c", [Self.cApp], "processes = 3")
            + Self.app("swift", [Self.swiftApp], "processes = 2")
            + Self.app("py", ["python3", Self.pythonApp], "processes = 2")
            + Self.app("php", ["php-cgi"], "processes = 2\nroot = \"\(repositoryRoot)/apps/php\"")
            .replacingOccurrences(of: "path = \"/php\"", with: "extension = \".php\"")
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"")
        defer { server.stop() }
        #expect(Self.eventually(5) { server.appPIDs("c-app").count == 3 }, "\(server.appPIDs("c-app"))")
        #expect(Self.eventually(5) { server.appPIDs("swift-app").count == 2 })
        #expect(Self.eventually(5) { server.appPIDs("app.py").count == 2 })
        #expect(Self.eventually(5) { server.appPIDs("php-cgi").count == 2 })
        #expect(try http(server.port, "GET", "/c/hello").text.contains("Hello from C"))
        #expect(try http(server.port, "GET", "/swift/hello").text.contains("Hello from Swift"))
        #expect(try http(server.port, "GET", "/py/hello").text.contains("Hello from Python"))
        #expect(try http(server.port, "GET", "/app.php/hello").text.contains("Hello from PHP"))
        // The app starts with a clean environment: what env_copy and env give, nothing else.
        let env = try http(server.port, "GET", "/c/env").text
        #expect(!env.contains("GATEWAYD_TEST_SECRET"))
        let c = try Self.appStatus(server.port, "c")
        #expect(c["processes"] as? Int == 3)
        #expect(c["process_manager"] as? String == "static")
        // The status page in its three forms.
        let text = try http(server.port, "GET", "/status").text
        #expect(text.contains("app:                  c") && text.contains("workers:              2"))
        let html = try http(server.port, "GET", "/status?html")
        #expect(html.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(html.text.contains("<table>") && html.text.contains("<td>c</td>"))
    }

    @Test func dynamicScalesUpUnderLoadAndBackDown() throws {
        let config = Self.app("c", [Self.cApp], "pm = \"dynamic\"\nprocesses = 4\nmin_spare = 1\nmax_spare = 1")
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"", workers: 4)
        defer { server.stop() }
        #expect(Self.eventually(5) { server.appPIDs("c-app").count == 1 })
        let port = server.port
        nonisolated(unsafe) var peak = 0
        let watcher = Thread {
            for _ in 0..<100 {
                peak = max(peak, server.appPIDs("c-app").count)
                usleep(20_000)
            }
        }
        watcher.start()
        let failures = load(concurrency: 4, count: 40) { _ in try http(port, "GET", "/c/sleep?ms=100") }
        #expect(failures.isEmpty, "\(failures)")
        while watcher.isExecuting { usleep(10_000) }
        #expect(peak >= 3, "scaled up to \(peak) processes")
        // Idle again: one retired per second down to max_spare idle.
        #expect(Self.eventually(8) { server.appPIDs("c-app").count <= 2 }, "\(server.appPIDs("c-app").count) processes")
        #expect(server.errorLog.contains("more than max_spare (1) idle"))
    }

    @Test func ondemandStartsOnTheFirstRequestAndRetiresWhenIdle() throws {
        let config = Self.app("php", ["php-cgi"], "pm = \"ondemand\"\nprocesses = 2\nidle_timeout = \"1s\"\nroot = \"\(repositoryRoot)/apps/php\"")
            .replacingOccurrences(of: "path = \"/php\"", with: "extension = \".php\"")
        let server = try GatewaydServer(config: config)
        defer { server.stop() }
        usleep(300_000)
        #expect(server.appPIDs("php-cgi").isEmpty)
        let r = try http(server.port, "GET", "/app.php/hello")
        #expect(r.status == 200 && r.text.contains("Hello from PHP"))
        #expect(server.appPIDs("php-cgi").count == 1)
        #expect(Self.eventually(4) { server.appPIDs("php-cgi").isEmpty }, "retired after idle_timeout")
        #expect(server.errorLog.contains("idle for 1 s"))
        // And it comes back for the next request.
        #expect(try http(server.port, "GET", "/app.php/hello").status == 200)
    }

    /// A route's env and its app's reach the app; the route's wins a name both set (the
    /// two lists are joined once at boot, by route).
    @Test func routeAndAppEnvironmentsReachTheApp() throws {
        let config = """
        [[app]]
        name = "py"
        command = ["python3", "\(Self.pythonApp)"]
        env_copy = ["PATH", "HOME"]
        env = { FROM_APP = "app", BOTH = "app" }
        [[route]]
        path = "/py"
        app = "py"
        env = { FROM_ROUTE = "route", BOTH = "route" }
        [[route]]
        path = "/other"
        app = "py"
        """
        let server = try GatewaydServer(config: config, workers: 1, workerClass: "epoll")
        defer { server.stop() }
        func env(_ path: String) throws -> [String: String] {
            let r = try http(server.port, "GET", path)
            return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: String]) ?? [:]
        }
        let routed = try env("/py/env")
        #expect(routed["FROM_APP"] == "app" && routed["FROM_ROUTE"] == "route" && routed["BOTH"] == "route", "\(routed)")
        let other = try env("/other/env")
        #expect(other["FROM_APP"] == "app" && other["FROM_ROUTE"] == nil && other["BOTH"] == "app", "\(other)")
    }

    @Test func killedAppProcessIsReplacedAndCostsAtMostItsRequest() throws {
        let config = Self.app("py", ["python3", Self.pythonApp], "processes = 2")
        let server = try GatewaydServer(config: config, workers: 4)
        defer { server.stop() }
        #expect(Self.eventually(5) { server.appPIDs("app.py").count == 2 })
        let before = server.appPIDs("app.py")
        let port = server.port
        let killer = Thread {
            usleep(400_000)
            kill(before[0], SIGKILL)
        }
        killer.start()
        let failures = load(concurrency: 4, count: 150) { _ in try http(port, "GET", "/py/sleep?ms=10") }
        #expect(failures.count <= 1, "\(failures)")
        #expect(Self.eventually(3) {
            let now = server.appPIDs("app.py")
            return now.count == 2 && !now.contains(before[0])
        })
        #expect(server.errorLog.contains("exited: signal 9"))
    }

    @Test func maxRequestsRecyclingUnderLoadFailsNothing() throws {
        let config = Self.app("c", [Self.cApp], "processes = 2\nmax_requests = 25")
            + Self.app("swift", [Self.swiftApp], "processes = 2\nmax_requests = 25\nkeep_conn = true")
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"", workers: 4)
        defer { server.stop() }
        let port = server.port
        let failures = load(concurrency: 4, count: 300) { i in try http(port, "GET", i % 2 == 0 ? "/c/hello" : "/swift/hello") }
        #expect(failures.isEmpty, "\(failures)")
        let c = try Self.appStatus(port, "c")
        let swift = try Self.appStatus(port, "swift")
        // 150 requests each over limits of 25 and 37: at least 3 recycles per app.
        #expect((c["restarts"] as? Int ?? 0) >= 3, "\(c)")
        #expect((swift["restarts"] as? Int ?? 0) >= 3, "\(swift)")
        #expect(server.errorLog.contains("(max_requests); replacing it"))
    }

    @Test func failingCommandBacksOffWithAClearLine() throws {
        let config = Self.app("broken", ["sh", "-c", "echo 'cannot open database' >&2; exit 3"], "processes = 1\nqueue_timeout = \"300ms\"")
        let server = try GatewaydServer(config: config)
        defer { server.stop() }
        let r = try http(server.port, "GET", "/broken/x")
        #expect(r.status == 503)
        #expect(r.header("Retry-After") != nil)
        usleep(2_500_000)
        let log = server.errorLog
        let starts = log.components(separatedBy: "exited at start-up").count - 1
        // Back-off 0.5 s, 1 s, 2 s: 2 to 4 starts in ~3 s, not hundreds.
        #expect(starts >= 2 && starts <= 4, "\(starts) starts:\n\(log)")
        #expect(log.contains("(`sh -c echo 'cannot open database' >&2; exit 3`) exited at start-up (exit code 3"))
        #expect(log.contains("its last output: cannot open database; retrying in"))
        #expect(server.waitForExit(timeout: 0.1) == nil, "the master keeps running")
    }

    @Test func appsSurviveKill9OfAWorker() throws {
        let config = Self.app("c", [Self.cApp], "processes = 2")
        let server = try GatewaydServer(config: config, workers: 2)
        defer { server.stop() }
        #expect(Self.eventually(5) { server.appPIDs("c-app").count == 2 })
        let apps = server.appPIDs("c-app")
        let worker = try #require(server.workerPIDs().first)
        kill(worker, SIGKILL)
        #expect(Self.eventually(3) { server.workerPIDs().count == 2 && !server.workerPIDs().contains(worker) })
        #expect(Set(server.appPIDs("c-app")) == Set(apps))
        let failures = load(concurrency: 2, count: 20) { _ in try http(server.port, "GET", "/c/hello") }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func appsDieWithAKilledMasterAndItsSocketsAreClearedLater() throws {
        let config = Self.app("c", [Self.cApp], "processes = 2")
        let first = try GatewaydServer(config: config)
        #expect(Self.eventually(5) { first.appPIDs("c-app").count == 2 })
        let apps = first.appPIDs("c-app")
        let runDir = "gatewayd-apps-\(first.masterPID)-"
        #expect(Host.directoryEntries("/tmp").contains { $0.hasPrefix(runDir) })
        kill(first.masterPID, SIGKILL)
        first.process.waitUntilExit()
        // PR_SET_PDEATHSIG: the apps go with the master (zombies count as gone).
        #expect(Self.eventually(3) { apps.allSatisfy { !((try? String(contentsOfFile: "/proc/\($0)/status", encoding: .utf8)) ?? "State:\tZ").contains("State:\tS") } })
        first.stop()
        let second = try GatewaydServer(config: config)
        defer { second.stop() }
        #expect(!Host.directoryEntries("/tmp").contains { $0.hasPrefix(runDir) }, "the dead master's socket directory is removed")
    }

    @Test func appsStopWithTheMaster() throws {
        let config = Self.app("c", [Self.cApp], "processes = 2")
        let server = try GatewaydServer(config: config)
        #expect(Self.eventually(5) { server.appPIDs("c-app").count == 2 })
        let apps = server.appPIDs("c-app")
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 10) == 0)
        #expect(Self.eventually(2) { apps.allSatisfy { kill($0, 0) != 0 } }, "app processes stopped")
        server.stop()
    }

    // MARK: - Queueing

    /// 50 sync workers hold 50 requests; 2 epoll workers hold them all in their loops,
    /// and their grants come by signal.
    @Test(arguments: ["sync", "epoll"])
    func twoSlotsServeFiftyConcurrentRequestsInArrivalOrder(workerClass: String) throws {
        let config = Self.app("c", [Self.cApp], "processes = 2\nqueue_timeout = \"30s\"")
        let workers = workerClass == "sync" ? 50 : 2
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"\nworker_class = \"\(workerClass)\"", workers: workers)
        defer { server.stop() }
        #expect(Self.eventually(10) { server.workerPIDs().count == workers })
        let port = server.port
        let lock = NSLock()
        nonisolated(unsafe) var finished: [(index: Int, at: Double, status: Int)] = []
        let group = DispatchGroup()
        let t0 = Date()
        for i in 0..<50 {
            group.enter()
            Thread.detachNewThread {
                let r = try? http(port, "GET", "/c/sleep?ms=200", timeout: 60)
                lock.lock()
                finished.append((i, Date().timeIntervalSince(t0), r?.status ?? 0))
                lock.unlock()
                group.leave()
            }
            usleep(15_000)  // a defined arrival order
        }
        group.wait()
        #expect(finished.allSatisfy { $0.status == 200 }, "\(finished.filter { $0.status != 200 })")
        // FIFO: two at a time, so request i finishes in round i/2. Allow one round of jitter.
        let order = finished.sorted { $0.at < $1.at }.map(\.index)
        for (rank, index) in order.enumerated() {
            #expect(abs(rank - index) <= 3, "request \(index) finished \(rank)th: \(order)")
        }
        let total = finished.map(\.at).max() ?? 0
        #expect(total >= 4.9 && total < 15, "50 x 200 ms over 2 slots took \(total) s")
        let c = try Self.appStatus(port, "c")
        #expect((c["max_queue_length"] as? Int ?? 0) >= 40, "\(c)")
    }

    @Test(arguments: ["sync", "epoll"])
    func shortQueueTimeoutAnswers503AndNothingHangs(workerClass: String) throws {
        let config = Self.app("c", [Self.cApp], "processes = 2\nqueue_timeout = \"300ms\"")
        let workers = workerClass == "sync" ? 10 : 1
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"\nworker_class = \"\(workerClass)\"", workers: workers)
        defer { server.stop() }
        #expect(Self.eventually(10) { server.workerPIDs().count == workers })
        let port = server.port
        let lock = NSLock()
        nonisolated(unsafe) var results: [(status: Int, retryAfter: String?, seconds: Double)] = []
        let group = DispatchGroup()
        for _ in 0..<10 {
            group.enter()
            Thread.detachNewThread {
                let t = Date()
                let r = try? http(port, "GET", "/c/sleep?ms=1500", timeout: 10)
                lock.lock()
                results.append((r?.status ?? 0, r?.header("Retry-After"), Date().timeIntervalSince(t)))
                lock.unlock()
                group.leave()
            }
        }
        group.wait()
        let ok = results.filter { $0.status == 200 }
        let busy = results.filter { $0.status == 503 }
        #expect(ok.count == 2 && busy.count == 8, "\(results)")
        #expect(busy.allSatisfy { $0.retryAfter == "1" && $0.seconds < 1.2 }, "\(busy)")
        let c = try Self.appStatus(port, "c")
        #expect(c["rejected"] as? Int == 8)
    }

    // MARK: - Keep-alive

    @Test(arguments: ["sync", "thread", "epoll"])
    func keptConnectionsNeverMakeARequestWaitBehindAnother(workerClass: String) throws {
        // 4 sync workers (or 2 thread workers of 4 threads), 2 single-threaded processes,
        // every connection kept: a request must never be sent to a process pinned by an
        // idle kept connection of another worker or thread (nginx's head-of-line blocking).
        let config = Self.app("c", [Self.cApp], "processes = 2\nkeep_conn = true\nqueue_timeout = \"5s\"")
        let server = try GatewaydServer(config: config, server: "status_path = \"/status\"\nkeepalive = 0\nworker_class = \"\(workerClass)\"\nthreads = 4",
                                        workers: workerClass == "sync" ? 4 : 2)
        defer { server.stop() }
        let port = server.port
        let lock = NSLock()
        nonisolated(unsafe) var slowest = 0.0
        let failures = load(concurrency: 4, count: 400) { i in
            let t = Date()
            let r = try http(port, "GET", i % 5 == 0 ? "/c/sleep?ms=20" : "/c/hello")
            lock.lock(); slowest = max(slowest, Date().timeIntervalSince(t)); lock.unlock()
            return r
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(slowest < 1.0, "slowest request \(slowest) s")
        let c = try Self.appStatus(port, "c")
        #expect(c["accepted"] as? Int == 400)
        #expect(c["rejected"] as? Int == 0)
        // A kept connection whose process is killed is retried on a new one.
        for pid in server.appPIDs("c-app") { kill(pid, SIGKILL) }
        usleep(300_000)
        let again = load(concurrency: 2, count: 20) { _ in try http(port, "GET", "/c/hello") }
        #expect(again.isEmpty, "\(again)")
    }

    @Test(arguments: workerClasses)
    func overloadedAnswerIsLikeABusySlot(workerClass: String) throws {
        // An external app with 2 slots that answers FCGI_OVERLOADED on every other
        // connection: each request that meets it is tried again on another slot.
        let sock = "/tmp/gatewayd-it-overloaded-\(getpid())-\(workerClass).sock"
        let app = Process()
        app.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        app.arguments = ["python3", repositoryRoot + "/Tests/IntegrationTests/Apps/overloaded.py", sock]
        try app.run()
        defer { kill(app.processIdentifier, SIGKILL); app.waitUntilExit(); unlink(sock) }
        #expect(Self.eventually(5) { FileManager.default.fileExists(atPath: sock) })
        let config = "[[app]]\nname = \"busy\"\nconnect = \"unix:\(sock)\"\nmax_conns = 2\n[[route]]\npath = \"/busy\"\napp = \"busy\"\n"
        let server = try GatewaydServer(config: config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        for _ in 0..<6 {
            let r = try http(server.port, "GET", "/busy/x")
            #expect(r.status == 200 && r.text == "not overloaded\n", "\(r.status) \(r.text)")
        }
        #expect(server.errorLog.contains("answered FCGI_OVERLOADED; trying another slot"))
    }

    @Test(.enabled(if: getuid() == 0, "SKIPPED: switching an app to another user needs root; run the tests as root to cover it"))
    func appRunsAsItsUserInItsDirectory() throws {
        let config = Self.app("c", [Self.cApp], "processes = 1\nuser = \"nobody\"\ncwd = \"/tmp\"")
        let server = try GatewaydServer(config: config, workers: 1)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
        let pid = try #require(server.appPIDs("c-app").first)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first
        #expect(uid.map(String.init) == String(getpwnam("nobody").pointee.pw_uid))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") == "/tmp")
    }
}
