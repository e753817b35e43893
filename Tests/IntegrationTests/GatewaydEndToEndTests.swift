import Foundation
import Testing
import Glibc

/// The sample apps behind a real gatewayd, as a client sees them.
final class AppStack: Sendable {
    let c: FastCGIApp
    let swift: FastCGIApp
    let python: FastCGIApp
    let php: FastCGIApp
    let fpm: PHPFPM?

    /// `phpFPM`: .php goes to php-fpm instead of php-cgi.
    init(phpFPM: Bool = false) throws {
        c = try FastCGIApp(name: "c", command: [repositoryRoot + "/apps/bin/c-app"], instances: 2)
        swift = try FastCGIApp(name: "swift", command: [repositoryRoot + "/.build/debug/swift-app"])
        python = try FastCGIApp(name: "py", command: ["python3", repositoryRoot + "/apps/python/app.py"])
        php = try FastCGIApp(name: "php", command: ["php-cgi"])
        fpm = phpFPM ? try PHPFPM() : nil
    }

    var config: String {
        """
        [[app]]
        name = "c"
        connect = "unix:\(c.socketPath)"
        [[app]]
        name = "swift"
        connect = "unix:\(swift.socketPath)"
        [[app]]
        name = "python"
        connect = "unix:\(python.socketPath)"
        [[app]]
        name = "php"
        connect = "unix:\(fpm?.socketPath ?? php.socketPath)"
        root = "\(repositoryRoot)/apps/php"
        [[app]]
        name = "missing"
        connect = "unix:/tmp/gatewayd-no-such-socket.sock"
        [[route]]
        path = "/c"
        app = "c"
        [[route]]
        path = "/swift"
        app = "swift"
        [[route]]
        path = "/py"
        app = "python"
        [[route]]
        extension = ".php"
        app = "php"
        [[route]]
        path = "/missing"
        app = "missing"
        """
    }

    func stop() {
        c.stop()
        swift.stop()
        python.stop()
        php.stop()
        fpm?.stop()
    }
}

/// Where each sample app's endpoints live behind the test configuration.
let appPrefixes = [("c", "/c"), ("swift", "/swift"), ("python", "/py"), ("php", "/app.php"), ("php-fpm", "/app.php")]
/// The worker classes the shared pipeline runs under: all three pass the same suite.
let workerClasses = ["sync", "thread", "epoll"]

@Suite("gatewayd end to end", .serialized)
struct GatewaydEndToEndTests {
    @Test("every sample app answers and sees the environment it should", arguments: appPrefixes, workerClasses)
    func appsAnswer(app: (String, String), workerClass: String) throws {
        let (app, prefix) = app
        let stack = try AppStack(phpFPM: app == "php-fpm")
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "worker_class = \"\(workerClass)\"")
        defer { server.stop() }
        let hello = try http(server.port, "GET", "\(prefix)/hello")
        #expect(hello.status == 200)
        #expect(hello.text.hasPrefix("Hello from"))

        let r = try http(server.port, "POST", "\(prefix)/env?a=1&b=two", headers: [("X-Test", "yes"), ("Proxy", "http://evil:3128"), ("Content-Type", "text/plain")], body: Array("abc".utf8))
        #expect(r.status == 200)
        let env = try jsonObject(r.body)
        #expect(env["REQUEST_METHOD"] as? String == "POST")
        #expect(env["SCRIPT_NAME"] as? String == prefix)
        #expect(env["PATH_INFO"] as? String == "/env")
        #expect(env["QUERY_STRING"] as? String == "a=1&b=two")
        #expect(env["CONTENT_LENGTH"] as? String == "3")
        #expect(env["HTTP_X_TEST"] as? String == "yes")
        #expect(env["REMOTE_ADDR"] as? String == "127.0.0.1")
        #expect(env["SERVER_PORT"] as? String == String(server.port))
        #expect(env["HTTP_PROXY"] == nil)
        if app.hasPrefix("php") { #expect(env["SCRIPT_FILENAME"] as? String == repositoryRoot + "/apps/php/app.php") }

        let s = try http(server.port, "GET", "\(prefix)/status?code=418&name=X-Custom&value=brewed")
        #expect(s.status == 418)
        #expect(s.header("X-Custom") == "brewed")
        #expect(server.accessLog.contains("\"GET \(prefix)/status?code=418&name=X-Custom&value=brewed HTTP/1.1\" 418"))
    }

    @Test("bodies up and down arrive byte-identical", arguments: appPrefixes, workerClasses)
    func bodies(app: (String, String), workerClass: String) throws {
        let (app, prefix) = app
        let stack = try AppStack(phpFPM: app == "php-fpm")
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "worker_class = \"\(workerClass)\"")
        defer { server.stop() }
        for size in [0, 1, 65536, 10 << 20] {
            let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
            let digest = try sha256Hex(body)
            for chunked in [false, true] where !(chunked && size == 0) {
                let up = try http(server.port, "POST", "\(prefix)/echo", body: body, chunked: chunked)
                #expect(up.status == 200, "\(app) upload \(size) chunked=\(chunked)")
                let result = try jsonObject(up.body)
                #expect(result["length"] as? Int == size, "\(app) upload \(size) chunked=\(chunked)")
                #expect(result["sha256"] as? String == digest, "\(app) upload \(size) chunked=\(chunked)")
            }
            let down = try http(server.port, "GET", "\(prefix)/stream?bytes=\(size)")
            #expect(down.status == 200)
            #expect(down.body.count == size, "\(app) download \(size)")
            #expect(down.body == (0..<size).map { UInt8(97 + $0 % 26) }, "\(app) download \(size)")
        }
    }

    @Test(arguments: workerClasses)
    func largeUploadDoesNotGrowTheWorker(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        _ = try http(server.port, "GET", "/c/hello")
        let worker = try #require(server.workerPIDs().first)
        let before = memoryKiB(worker)
        let body = [UInt8](repeating: 0x5A, count: 10 << 20)
        let r = try http(server.port, "POST", "/c/echo", body: body)
        #expect(r.status == 200)
        let after = memoryKiB(worker)
        let growth = after.peak - before.rss
        // Streamed in 64 KiB pieces: the 10 MiB body must not be held in the worker.
        #expect(growth < 4096, "worker peak RSS grew by \(growth) KiB during a 10 MiB upload")
    }

    @Test(arguments: workerClasses)
    func unreachableAppIs502AndSlowAppIs504(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "[timeouts]\nbackend_read = 1\n", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let missing = try http(server.port, "GET", "/missing/hello")
        #expect(missing.status == 502)
        let slow = try http(server.port, "GET", "/py/sleep?ms=2500")
        #expect(slow.status == 504)
        // The same (only) worker serves the next request at once.
        let next = try http(server.port, "GET", "/c/hello")
        #expect(next.status == 200)
        #expect(server.errorLog.contains("cannot reach the app"))
        #expect(server.errorLog.contains("within the read timeout"))
    }

    @Test(arguments: workerClasses)
    func killedWorkerIsReplacedAndOnlyItsRequestsFail(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let victim = try #require(server.workerPIDs().first)
        let port = server.port
        nonisolated(unsafe) var replacedWithin: Double? = nil
        let killer = Thread {
            usleep(300_000)
            kill(victim, SIGKILL)
            let t0 = Date()
            while Date().timeIntervalSince(t0) < 3 {
                let pids = server.workerPIDs()
                if pids.count == 2 && !pids.contains(victim) { replacedWithin = Date().timeIntervalSince(t0); break }
                usleep(10_000)
            }
        }
        killer.start()
        let failures = load(concurrency: 4, count: 150) { _ in try http(port, "GET", "/c/sleep?ms=10") }
        while killer.isExecuting { usleep(10_000) }
        usleep(200_000)
        // A sync worker holds one request; a thread or epoll worker holds as many as
        // come to it, at most the load's 4.
        #expect(failures.count <= (workerClass == "sync" ? 1 : 4), "more failures than the worker held: \(failures)")
        let t = try #require(replacedWithin, "no new worker after kill -9")
        #expect(t < 1.0)
    }

    @Test(arguments: workerClasses)
    func termUnderLoadFinishesInFlightRequests(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, server: "worker_class = \"\(workerClass)\"", workers: 2)
        defer { server.stop() }
        let port = server.port
        let signaller = Thread {
            usleep(150_000)
            server.signal(SIGTERM)
        }
        signaller.start()
        // Two requests in flight when TERM arrives: both must complete.
        let failures = load(concurrency: 2, count: 2) { _ in try http(port, "GET", "/c/sleep?ms=600") }
        #expect(failures.isEmpty, "\(failures)")
        #expect(server.waitForExit(timeout: 10) == 0)
        #expect(!FileManager.default.fileExists(atPath: server.dir + "/gatewayd.pid"), "pidfile removed")
    }

    @Test(arguments: workerClasses)
    func hupUnderLoadAppliesTheNewConfigWithoutFailures(workerClass: String) throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, workers: 2, workerClass: workerClass)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/new/hello").status == 404)
        let port = server.port
        let reloader = Thread {
            usleep(300_000)
            try? server.writeConfig(stack.config + "\n[[route]]\npath = \"/new\"\napp = \"c\"\n", workers: 3)
            server.signal(SIGHUP)
        }
        reloader.start()
        let failures = load(concurrency: 4, count: 300) { _ in try http(port, "GET", "/c/sleep?ms=5") }
        #expect(failures.isEmpty, "\(failures)")
        #expect(try http(server.port, "GET", "/new/hello").status == 200)
        usleep(500_000)
        #expect(server.workerPIDs().count == 3)
        #expect(server.errorLog.contains("HUP: configuration reloaded"))
    }

    @Test func hupWithABrokenConfigKeepsTheOldOne() throws {
        let stack = try AppStack()
        defer { stack.stop() }
        let server = try GatewaydServer(config: stack.config, workers: 2)
        defer { server.stop() }
        try server.writeConfig(stack.config, server: "threads = \"many\"")
        server.signal(SIGHUP)
        usleep(500_000)
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
        #expect(server.errorLog.contains("still serving with the old one"))
        #expect(server.errorLog.contains("\(server.configPath):6: server.threads: expected a positive integer, got \"many\""), "\(server.errorLog)")
        #expect(server.workerPIDs().count == 2)
    }

    @Test func aWorkerThatCannotBootStopsTheMaster() throws {
        let server = try GatewaydServer(config: "", server: "user = \"gatewayd-no-such-user\"", wait: false)
        defer { server.stop() }
        let code = server.waitForExit(timeout: 10)
        #expect(code == 3)
        #expect(server.errorLog.contains("cannot boot: getpwnam(gatewayd-no-such-user): no such user"), "\(server.errorLog)")
        #expect(server.errorLog.contains("failed to boot"))
    }

    @Test func ttinAndTtouChangeTheWorkerCount() throws {
        let server = try GatewaydServer(config: "", workers: 2)
        defer { server.stop() }
        server.signal(SIGTTIN)
        usleep(700_000)
        #expect(server.workerPIDs().count == 3)
        // One at a time: two pending signals of one kind are delivered once.
        server.signal(SIGTTOU)
        usleep(300_000)
        server.signal(SIGTTOU)
        usleep(1_500_000)
        #expect(server.workerPIDs().count == 1)
    }
}
