import Foundation
import GatewaySystem
import Testing
import Glibc

/// Runs a program to its end; its exit status and output.
@discardableResult
func runProgram(_ path: String, _ args: [String], cwd: String? = nil, env: [String: String]? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    if let env { p.environment = env }
    let out = Foundation.Pipe(), err = Foundation.Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both while it runs: a full stderr pipe would stall it.
    nonisolated(unsafe) var errData = Data()
    let t = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    t.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !t.isFinished { usleep(1000) }
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// Pids of live processes whose command line contains `token`.
func processes(containing token: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
        pid != getpid() && commandLine(pid).contains { $0.contains(token) } && processState(pid) != "Z"
    }
}

/// The state letter of a process (R, S, Z...), from /proc/PID/stat.
func processState(_ pid: Int32) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
}

/// Children of a process that are zombies (ended, not reaped).
func zombieChildren(of pid: Int32) -> [Int32] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    var out: [Int32] = []
    for t in tasks {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? ""
        out += text.split(separator: " ").compactMap { Int32($0) }.filter { processState($0) == "Z" }
    }
    return out
}

/// A directory of CGI programs made by a test, removed by `remove()`.
struct CGIDirectory {
    let path = "/tmp/gatewayd-it-cgi-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    /// A token in every program name here, to find their processes.
    let token = "gwtok\(UInt32.random(in: 0...UInt32.max))"

    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

    @discardableResult
    func add(_ name: String, _ text: String, executable: Bool = true) throws -> String {
        let file = path + "/" + name
        let dir = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, executable ? 0o755 : 0o644)
        return file
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// CGI under every worker class: the sample programs, the RFC 3875 details, and the
/// faults a CGI gateway must survive.
@Suite("CGI", .serialized)
struct CGITests {
    static func config(cgiDir: String = "\(repositoryRoot)/apps/cgi", cgi: String = "", route: String = "") -> String {
        """
        [cgi]
        interpreters = { ".pl" = "perl", ".py" = "python3" }
        \(cgi)
        [[route]]
        path = "/cgi-bin"
        cgi = "\(cgiDir)"
        \(route)
        [[route]]
        path = "/cgi-c"
        cgi = "\(repositoryRoot)/apps/bin/cgi-hello"
        """
    }

    static func json(_ r: HTTPResponse) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else { throw TestFailure("not JSON: \(r.text)") }
        return o
    }

    @Test("sample programs: environment, bodies, forms, uploads, nph, redirects", arguments: workerClasses)
    func samples(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config(), workers: 1, workerClass: workerClass)
        defer { server.stop() }

        // sh: PATH_INFO, the body, the working directory.
        let env = try http(server.port, "POST", "/cgi-bin/env.sh/extra/path?a=1&b", body: Array("hello".utf8))
        #expect(env.status == 200)
        #expect(env.text.contains("PATH_INFO=/extra/path\n"))
        #expect(env.text.contains("SCRIPT_NAME=/cgi-bin/env.sh\n"))
        #expect(env.text.contains("QUERY_STRING=a=1&b\n"))
        #expect(env.text.contains("CONTENT_LENGTH=5\n"))
        #expect(env.text.contains("BODY_SHA256=\(try sha256Hex(Array("hello".utf8)))"))
        #expect(env.text.contains("CWD=\(repositoryRoot)/apps/cgi\n"))

        // Python: the exact environment, fds, argv and process group; Proxy never becomes HTTP_PROXY.
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echo = try http(server.port, "POST", "/cgi-bin/echo.py/p?x=y", headers: [("Proxy", "http://evil:1"), ("X-Thing", "1")], body: body)
        #expect(echo.status == 200)
        let o = try Self.json(echo)
        let vars = o["env"] as? [String: String] ?? [:]
        #expect(vars["HTTP_PROXY"] == nil)
        #expect(vars["HTTP_X_THING"] == "1")
        #expect(vars["GATEWAY_INTERFACE"] == "CGI/1.1")
        #expect(vars["SCRIPT_FILENAME"] == "\(repositoryRoot)/apps/cgi/echo.py")
        #expect(vars["PATH_INFO"] == "/p")
        #expect(vars["REQUEST_METHOD"] == "POST")
        #expect(vars["CONTENT_LENGTH"] == "300000")
        #expect(vars["HOME"] == nil && vars["GATEWAYD_BIN"] == nil, "a clean environment, not the server's")
        #expect(o["body_sha256"] as? String == (try sha256Hex(body)))
        #expect(o["argv"] as? [String] == ["\(repositoryRoot)/apps/cgi/echo.py"], "no query words on the command line")
        #expect(o["pgid_is_pid"] as? Bool == true)
        // 0, 1, 2 and the one listdir opened to count them.
        #expect((o["fds"] as? [Int] ?? []).filter { $0 > 2 }.count <= 1, "only fds 0-2 are inherited: \(o["fds"] ?? "")")

        // A chunked upload reaches the program whole, with CONTENT_LENGTH.
        let chunked = try http(server.port, "PUT", "/cgi-bin/echo.py", body: body, chunked: true)
        let co = try Self.json(chunked)
        #expect((co["env"] as? [String: String])?["CONTENT_LENGTH"] == "300000")
        #expect(co["body_sha256"] as? String == (try sha256Hex(body)))

        // Perl CGI.pm: a form POST and a multipart upload, sent by curl.
        let form = try runProgram("/usr/bin/curl", ["-s", "-d", "name=ada", "http://127.0.0.1:\(server.port)/cgi-bin/form.pl"])
        #expect(form.stdout == "name=ada\n", "\(form.stdout) \(server.errorLog)")
        let upload = try runProgram("/usr/bin/curl", ["-s", "-F", "name=bob", "-F", "file=@\(repositoryRoot)/apps/c/app.c",
                                                      "http://127.0.0.1:\(server.port)/cgi-bin/form.pl"])
        let appC = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/apps/c/app.c")))
        #expect(upload.stdout.contains("name=bob\n"))
        #expect(upload.stdout.contains("file=app.c size=\(appC.count) sha256=\(try sha256Hex(appC))"), "\(upload.stdout)")

        // C, as the one program of a prefix.
        let c = try http(server.port, "GET", "/cgi-c/x/y?q=2")
        #expect(c.text == "hello from C CGI: GET /x/y?q=2\n")

        // nph-: the program's own status line and headers, untouched.
        let nph = try http(server.port, "GET", "/cgi-bin/nph-hello.sh")
        #expect(nph.status == 200 && nph.header("X-Nph") == "yes" && nph.text == "nph says hello\n")

        // Location: /path is served internally; Location: http://... becomes a 302.
        let local = try http(server.port, "GET", "/cgi-bin/echo.py?redirect=local")
        #expect(local.status == 200 && local.text.contains("QUERY_STRING=from=redirect\n"), "\(local.text)")
        let client = try http(server.port, "GET", "/cgi-bin/echo.py?redirect=client")
        #expect(client.status == 302 && client.header("Location") == "http://example.com/elsewhere")

        // Keep-alive: two chunked answers on one connection, nothing stray between them.
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
        defer { try? fd.close() }
        try fd.writeAll(Array("GET /cgi-c/one HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        usleep(300_000)  // the first run ends before the second request comes
        try fd.writeAll(Array("GET /cgi-c/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let both = try readAll(fd, timeout: 10)
        let first = try parseResponse(both)
        #expect(first.text == "hello from C CGI: GET /one?\n")
        let text = String(decoding: both, as: UTF8.self)
        let second = text.range(of: "\r\n0\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        #expect(second.hasPrefix("HTTP/1.1 200"), "nothing between the two responses: \(text)")
        #expect(try parseResponse(Array(second.utf8)).text == "hello from C CGI: GET /two?\n")

        // Status, and HEAD.
        let status = try http(server.port, "GET", "/cgi-bin/echo.py?status=418%20Teapot")
        #expect(status.status == 418)
        let head = try http(server.port, "HEAD", "/cgi-bin/echo.py")
        #expect(head.status == 200 && head.body.isEmpty)
    }

    @Test("what must not run: traversal, hidden, non-executable, links out, directories")
    func refusals() throws {
        let dir = try CGIDirectory()
        defer { dir.remove() }
        let outside = try CGIDirectory()
        defer { outside.remove() }
        try dir.add("ok.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n")
        try dir.add("sub/deep.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$PATH_INFO\"\n")
        try dir.add(".hidden.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhidden\\n'\n")
        try dir.add(".git/hook.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhidden\\n'\n")
        try dir.add("plain.txt", "not a program\n", executable: false)
        let evil = try outside.add("evil.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nevil\\n'\n")
        symlink(evil, dir.path + "/out.sh")
        symlink(dir.path + "/ok.sh", dir.path + "/in.sh")
        let server = try GatewaydServer(config: Self.config(cgiDir: dir.path), workers: 1)
        defer { server.stop() }

        func status(_ path: String) throws -> Int { try http(server.port, "GET", path).status }
        #expect(try status("/cgi-bin/ok.sh") == 200)
        #expect(try http(server.port, "GET", "/cgi-bin/sub/deep.sh/a/b").text == "/a/b\n")
        #expect(try status("/cgi-bin/in.sh") == 200, "a link that stays inside is fine")
        #expect(try status("/cgi-bin/out.sh") == 403, "a link out of the directory")
        #expect(try status("/cgi-bin/.hidden.sh") == 404)
        #expect(try status("/cgi-bin/.git/hook.sh") == 404)
        #expect(try status("/cgi-bin/plain.txt") == 403)
        #expect(try status("/cgi-bin/missing.sh") == 404)
        #expect(try status("/cgi-bin/sub") == 404, "a directory runs nothing")
        #expect(try status("/cgi-bin/sub/%2e%2e/ok.sh") == 400)
        #expect(try status("/cgi-bin/sub%2fdeep.sh") == 400)
        #expect(try status("/cgi-bin/%252e%252e/ok.sh") == 400)
        #expect(try status("/cgi-bin/ok.sh%00") == 400)
        #expect(try status("/cgi-bin/ok.sh%0d%0aX:1") == 400)
        #expect(try status("/cgi-bin/../../etc/passwd") == 400, "climbs above the root")
        #expect(try status("/cgi-bin/sub/../ok.sh") == 200, "normalised inside the route")
        #expect(try http(server.port, "GET", "/cgi-bin/out.sh").text.contains("evil") == false)

        // allow_symlinks lets the route follow links out.
        try server.writeConfig(Self.config(cgiDir: dir.path, route: "allow_symlinks = true"), workers: 1)
        server.signal(SIGHUP)
        var got = 0
        for _ in 0..<100 where got != 200 {
            usleep(50_000)
            got = try status("/cgi-bin/out.sh")
        }
        #expect(got == 200)
    }

    @Test("faults: crash, bad head, stderr flood, unread stdin, a background child, Shellshock", arguments: workerClasses)
    func faults(workerClass: String) throws {
        let marker = "/tmp/gatewayd-it-shellshock-\(getpid())"
        unlink(marker)
        let server = try GatewaydServer(config: Self.config(), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        #expect(try http(server.port, "GET", "/cgi-bin/echo.py?crash=1").status == 502)
        #expect(try http(server.port, "GET", "/cgi-bin/echo.py?garbage=1").status == 502)
        #expect(server.errorLog.contains("bad CGI response"))

        // 8 MiB of stderr: answered, and the log gets a bounded share of it.
        let before = server.errorLog.utf8.count
        let flood = try http(server.port, "GET", "/cgi-bin/echo.py?flood=8192")
        #expect(flood.status == 200)
        let logged = server.errorLog.utf8.count - before
        #expect(logged < 256 * 1024, "stderr logged: \(logged) bytes")
        #expect(server.errorLog.contains("more bytes of stderr not logged"))

        // A program that never reads a 2 MiB body still answers.
        let big = [UInt8](repeating: 65, count: 2 << 20)
        let nostdin = try http(server.port, "POST", "/cgi-bin/echo.py?nostdin=1", body: big)
        #expect(nostdin.status == 200)

        // A background child holding stdout for 30 s does not hold the response.
        let t0 = Date()
        let bg = try http(server.port, "GET", "/cgi-bin/echo.py?background=1", timeout: 20)
        #expect(bg.status == 200 && bg.text.contains("started a background child"))
        #expect(Date().timeIntervalSince(t0) < 10)

        // A large answer streams whole.
        let large = try http(server.port, "GET", "/cgi-bin/echo.py?big=8")
        #expect(large.body.count == 8 << 20)

        // Shellshock: the header must not run as a bash function definition.
        let shock = try http(server.port, "GET", "/cgi-bin/shellshock.sh",
                             headers: [("X-Payload", "() { :; }; /usr/bin/touch \(marker)")])
        #expect(shock.status == 200)
        #expect(shock.text.contains("HTTP_X_PAYLOAD=unset"), "\(shock.text)")
        // Not only HTTP_*: every value the client chooses (Content-Type, the query).
        let shock2 = try http(server.port, "POST", "/cgi-bin/shellshock.sh?()%20%7B%20:;%20%7D",
                              headers: [("Content-Type", "() { :; }; /usr/bin/touch \(marker)")], body: Array("x".utf8))
        #expect(shock2.status == 200)
        #expect(shock2.text.contains("CONTENT_TYPE=unset"), "\(shock2.text)")
        #expect(shock2.text.contains("QUERY_STRING=%28)%20%7B%20:;%20%7D"), "\(shock2.text)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        for w in server.workerPIDs() { #expect(zombieChildren(of: w).isEmpty) }
    }

    @Test("a hung program is ended at cgi.timeout (504); a gone client ends its program", arguments: workerClasses)
    func timeoutsAndGoneClients(workerClass: String) throws {
        let dir = try CGIDirectory()
        defer { dir.remove() }
        // Ignores SIGTERM: only the SIGKILL after kill_grace ends it.
        try dir.add("hang-\(dir.token).py", "#!/usr/bin/env python3\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(300)\n")
        try dir.add("sleep-\(dir.token).sh", "#!/bin/sh\nsleep 300\n")
        let server = try GatewaydServer(config: Self.config(cgiDir: dir.path, cgi: "timeout = \"1s\"\nkill_grace = \"0.5s\""),
                                        workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let t0 = Date()
        let hung = try http(server.port, "GET", "/cgi-bin/hang-\(dir.token).py", timeout: 15)
        #expect(hung.status == 504)
        #expect(Date().timeIntervalSince(t0) < 5)
        usleep(300_000)
        #expect(processes(containing: "hang-\(dir.token)").isEmpty, "the hung program was killed")
        for w in server.workerPIDs() { #expect(zombieChildren(of: w).isEmpty) }

        // The client leaves while the program sleeps: the program goes too.
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
        try fd.writeAll(Array("GET /cgi-bin/sleep-\(dir.token).sh HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var started = false
        for _ in 0..<100 where !started {
            usleep(20_000)
            started = !processes(containing: "sleep-\(dir.token)").isEmpty
        }
        #expect(started)
        try fd.close()
        var gone = false
        for _ in 0..<150 where !gone {
            usleep(20_000)
            gone = processes(containing: "sleep-\(dir.token)").isEmpty && processes(containing: "sleep 300").isEmpty
        }
        #expect(gone, "the program of a client that left was ended")
        usleep(200_000)
        for w in server.workerPIDs() { #expect(zombieChildren(of: w).isEmpty) }
    }

    @Test("200 concurrent requests never run more than max_processes programs", arguments: ["thread", "epoll"])
    func maxProcesses(workerClass: String) throws {
        let dir = try CGIDirectory()
        defer { dir.remove() }
        let tally = dir.path + "/tally"
        try FileManager.default.createDirectory(atPath: tally, withIntermediateDirectories: true)
        // Counts the programs running at its start (one file each), keeps the highest.
        try dir.add("count.py", """
            #!/usr/bin/env python3
            import os, time
            d = "\(tally)"
            me = os.path.join(d, "run.%d" % os.getpid())
            open(me, "w").close()
            n = len([f for f in os.listdir(d) if f.startswith("run.")])
            open(os.path.join(d, "seen.%d" % n), "w").close()
            time.sleep(0.1)
            os.unlink(me)
            print("Content-Type: text/plain\\n\\n%d" % n)
            """)
        // The header timeout (1 s) is far shorter than the wait in the queue (about 7 s):
        // a request whose head was sent in time is answered however long it queues.
        let server = try GatewaydServer(config: Self.config(cgiDir: dir.path, cgi: "max_processes = 3\nqueue_timeout = \"60s\"") + "\n[timeouts]\nheader = 1",
                                        server: "threads = 8\nworker_connections = 400", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        var conns: [FileDescriptor] = []
        for _ in 0..<200 {
            let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
            try fd.writeAll(Array("GET /cgi-bin/count.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            conns.append(fd)
        }
        var ok = 0, bad = 0
        for fd in conns {
            let reply = String(decoding: (try? readAll(fd, timeout: 60)) ?? [], as: UTF8.self)
            if reply.hasPrefix("HTTP/1.1 200") { ok += 1 } else {
                bad += 1
                if bad <= 3 { Issue.record("reply \(ok + bad): \(reply.isEmpty ? "(none)" : String(reply.prefix(200)))") }
            }
            try? fd.close()
        }
        #expect(ok == 200, "\(server.errorLog.suffix(3000))")
        let seen = try FileManager.default.contentsOfDirectory(atPath: tally).filter { $0.hasPrefix("seen.") }.compactMap { Int($0.dropFirst(5)) }
        #expect(seen.max() ?? 0 <= 3, "programs at once: \(seen.sorted())")
        #expect(seen.max() == 3, "the places were used: \(seen.sorted())")
    }

    @Test("no zombie after 10,000 requests", arguments: workerClasses)
    func noZombies(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config(), workers: 2, workerClass: workerClass)
        defer { server.stop() }
        let total = 10_000, clients = 4
        nonisolated(unsafe) var failures = 0
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: clients) { k in
            var bad = 0
            for i in 0..<(total / clients) {
                if (try? http(server.port, "GET", "/cgi-c/\(k)/\(i)"))?.status != 200 { bad += 1 }
            }
            lock.lock()
            failures += bad
            lock.unlock()
        }
        #expect(failures == 0)
        usleep(200_000)
        for w in server.workerPIDs() {
            #expect(zombieChildren(of: w).isEmpty)
            let children = (try? String(contentsOfFile: "/proc/\(w)/task/\(w)/children", encoding: .utf8)) ?? ""
            #expect(children.trimmingCharacters(in: .whitespaces).isEmpty, "worker \(w) still has children: \(children)")
        }
    }
}
