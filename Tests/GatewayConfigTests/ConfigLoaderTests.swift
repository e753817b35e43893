import Testing
@testable import GatewayConfig

func load(_ text: String, cpu: Int = 2) throws(ConfigError) -> Configuration {
    try ConfigLoader.load(text: text, file: "gateway.toml", baseDirectory: "/etc/gatewayd", cpuCount: cpu)
}

/// The messages of a configuration that must fail.
func problems(_ text: String) -> [String] {
    do {
        _ = try load(text)
        return []
    } catch {
        return error.issues.map(\.description)
    }
}

let issueExample = """
[server]
bind = ["127.0.0.1:8080", "unix:/run/gatewayd.sock"]
workers = 5
worker_class = "epoll"          # sync | thread | epoll
threads = 8                     # thread workers
[[app]]
name = "php"
command = ["php-cgi"]           # hosted: gatewayd starts and supervises it
processes = 4
root = "/srv/www"               # SCRIPT_FILENAME = root + script
[[app]]
name = "api"
connect = "unix:/run/api.sock"  # run elsewhere (or "127.0.0.1:9000")
max_conns = 8                   # its concurrency (php-fpm: pm.max_children)
queue_timeout = 10
[[route]]
path = "/api"
app = "api"
[[route]]
extension = ".php"
app = "php"
[[route]]
path = "/cgi-bin"
cgi = "/srv/cgi-bin"            # a directory of CGI programs, or one program
env = { GIT_PROJECT_ROOT = "/srv/git" }
[[route]]
path = "/"
static = "/srv/www"
"""

@Suite("gateway.toml loading")
struct ConfigLoaderTests {
    @Test func theDocumentedShapeLoads() throws {
        let c = try load(issueExample)
        #expect(c.server.bind == [.tcp(host: "127.0.0.1", port: 8080), .unix(path: "/run/gatewayd.sock")])
        #expect(c.server.workers == 5)
        #expect(c.server.workerClass == .epoll)
        #expect(c.server.threads == 8)
        #expect(c.apps.count == 2)
        #expect(c.apps[0].kind == .hosted(command: ["php-cgi"], pm: ProcessManager(mode: .static, maxProcesses: 4, minSpare: 1, maxSpare: 2, idleTimeout: 10)))
        #expect(c.apps[0].root == "/srv/www")
        #expect(c.apps[1].kind == .external([UpstreamServer(address: .unix(path: "/run/api.sock"), maxConns: 8)]))
        #expect(c.apps[1].queueTimeout == 10)
        #expect(c.routes.map(\.match) == [.path("/api"), .extension(".php"), .path("/cgi-bin"), .path("/")])
        #expect(c.routes[2].target == .cgi("/srv/cgi-bin"))
        #expect(c.routes[2].env == ["GIT_PROJECT_ROOT": "/srv/git"])
        #expect(c.routes[3].target == .static("/srv/www"))
    }

    @Test func defaults() throws {
        let c = try load("", cpu: 2)
        #expect(c.server.workers == 5)
        #expect(c.server.workerClass == .sync)
        #expect(c.server.bind == [.tcp(host: "127.0.0.1", port: 8000)])
        #expect(c.server.keepalive == 2)
        #expect(c.server.backlog == 2048)
        #expect(c.server.timeout == 30)
        #expect(c.limits == LimitsConfig())
        #expect(c.timeouts.header == 10)
        #expect(try load("", cpu: 8).server.workers == 17)
    }

    @Test func relativePathsFollowTheConfigFile() throws {
        let c = try load("""
        [server]
        bind = "unix:run/gw.sock"
        pidfile = "./run/gw.pid"
        [[app]]
        name = "c"
        command = ["../apps/bin/hello", "--flag"]
        root = "www"
        [[route]]
        path = "/"
        static = "/abs/www"
        """)
        #expect(c.server.bind == [.unix(path: "/etc/gatewayd/run/gw.sock")])
        #expect(c.server.pidfile == "/etc/gatewayd/run/gw.pid")
        // processes defaults to the worker count for the sync class
        guard case .hosted(let command, let pm) = c.apps[0].kind else { Issue.record("not hosted"); return }
        #expect(command == ["/etc/apps/bin/hello", "--flag"])
        #expect(pm.maxProcesses == c.server.workers)
        #expect(c.apps[0].root == "/etc/gatewayd/www")
        #expect(c.routes[0].target == .static("/abs/www"))
    }

    @Test func durationsAndSizes() throws {
        let c = try load("""
        [server]
        timeout = "2m"
        keepalive = 0
        graceful_timeout = 2.5
        open_file_cache = 0
        open_file_cache_valid = "30s"
        [limits]
        max_body_size = "1G"
        max_head_size = "32K"
        [timeouts]
        backend_connect = "500ms"
        """)
        #expect(c.server.timeout == 120)
        #expect(c.server.keepalive == 0)
        #expect(c.server.gracefulTimeout == 2.5)
        #expect(c.server.openFileCache == 0 && c.server.openFileCacheValid == 30)
        #expect(c.limits.maxBodySize == 1 << 30)
        #expect(c.limits.maxHeadSize == 32768)
        #expect(c.timeouts.backendConnect == 0.5)
    }

    @Test func theIssueExampleError() {
        #expect(problems("# gatewayd\n\n[server]\nbind = \"127.0.0.1:8080\"\n\n\n\n\n\n\n\nworkers = \"four\"\n")
                == ["gateway.toml:12: server.workers: expected a positive integer, got \"four\""])
    }

    @Test("errors carry file, line and key", arguments: [
        ("[server]\nwrokers = 4\n", "gateway.toml:2: server.wrokers: unknown key; did you mean \"workers\"?"),
        ("[server]\nworker_class = \"epol\"\n", "gateway.toml:2: server.worker_class: expected one of sync, thread, epoll, got \"epol\"; did you mean \"epoll\"?"),
        ("[server]\nworkers = 0\n", "gateway.toml:2: server.workers: expected a positive integer, got 0"),
        ("[server]\nbind = [\"localhost\"]\n", "gateway.toml:2: server.bind: expected host:port, [v6]:port or unix:/path, got \"localhost\""),
        ("[server]\nbind = [\"127.0.0.1:99999\"]\n", "gateway.toml:2: server.bind: port must be 1-65535, got \"99999\""),
        ("[server]\nbind = [\"::1:80\"]\n", "gateway.toml:2: server.bind: an IPv6 address needs brackets: [::1]:80"),
        ("[server]\ntimeout = \"soon\"\n", "gateway.toml:2: server.timeout: expected a duration in seconds (30, 2.5, \"500ms\", \"5m\"), got \"soon\""),
        ("[server]\nopen_file_cache = -1\n", "gateway.toml:2: server.open_file_cache: expected a non-negative integer, got -1"),
        ("[server]\nopen_file_cache_valid = 0\n", "gateway.toml:2: server.open_file_cache_valid: must be greater than 0"),
        ("[server]\nkeepalive = -1\n", "gateway.toml:2: server.keepalive: expected a duration in seconds (30, 2.5, \"500ms\", \"5m\"), got -1"),
        ("[limits]\nmax_body_size = \"lots\"\n", "gateway.toml:2: limits.max_body_size: expected a size in bytes (65536, \"64K\", \"100M\", \"1G\"), got \"lots\""),
        ("[log]\nlevel = \"verbose\"\n", "gateway.toml:2: log.level: expected one of trace, debug, info, notice, warning, error, critical, got \"verbose\""),
        ("[sever]\nworkers = 2\n", "gateway.toml:1: sever: unknown key; did you mean \"server\"?"),
        ("\n\n[[app]]\nname = \"a\"\n", "gateway.toml:3: app[0]: needs either command (gatewayd runs the app) or connect (the app runs elsewhere)"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nconnect = \"127.0.0.1:9000\"\n", "gateway.toml:1: app[0]: has both command and connect; choose one"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\nprocesses = 4\n", "gateway.toml:4: app[0].processes: applies to hosted apps (command); use max_conns for connect"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\npm = \"lazy\"\n", "gateway.toml:4: app[0].pm: expected one of static, dynamic, ondemand, got \"lazy\""),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nmin_spare = 2\n", "gateway.toml:4: app[0].min_spare: applies to pm = \"dynamic\" only"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\npm = \"dynamic\"\nmin_spare = 3\nmax_spare = 2\n", "gateway.toml:5: app[0].min_spare: is larger than max_spare (2)"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\npm = \"dynamic\"\nprocesses = 2\nmax_spare = 3\n", "gateway.toml:6: app[0].max_spare: is larger than processes (2)"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nidle_timeout = \"5s\"\n", "gateway.toml:4: app[0].idle_timeout: applies to pm = \"dynamic\" or \"ondemand\""),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\npm = \"static\"\n", "gateway.toml:4: app[0].pm: applies to hosted apps (command); gatewayd does not manage the processes of a connect app"),
        ("[server]\nstatus_path = \"status\"\n", "gateway.toml:2: server.status_path: must be a path starting with /, got \"status\""),
        ("[[app]]\nname = \"a\"\ncommand = \"php-cgi\"\n", "gateway.toml:3: app[0].command: expected an array of strings, got \"php-cgi\""),
        ("[[app]]\ncommand = [\"x\"]\n", "gateway.toml:1: app[0]: needs a name"),
        ("[app]\nname = \"a\"\n", "gateway.toml:1: app: expected [[app]] entries (an array of tables), got a table"),
        ("[[route]]\npath = \"/\"\napp = \"php\"\n", "gateway.toml:3: route[0].app: no app named \"php\" (no [[app]] is defined)"),
        ("[[app]]\nname = \"php\"\ncommand = [\"php-cgi\"]\n[[route]]\npath = \"/\"\napp = \"ph\"\n", "gateway.toml:6: route[0].app: no app named \"ph\" (known apps: php); did you mean \"php\"?"),
        ("[[route]]\npath = \"api\"\nstatic = \"/x\"\n", "gateway.toml:2: route[0].path: must start with /, got \"api\""),
        ("[[route]]\nextension = \"php\"\nstatic = \"/x\"\n", "gateway.toml:2: route[0].extension: expected an extension such as \".php\", got \"php\""),
        ("[[route]]\npath = \"/\"\nstatic = \"/x\"\ncgi = \"/y\"\n", "gateway.toml:1: route[0]: has cgi and static; choose one"),
        ("[[route]]\npath = \"/\"\n", "gateway.toml:1: route[0]: needs one of app, cgi or static"),
        ("[[route]]\nstatic = \"/x\"\n", "gateway.toml:1: route[0]: needs path (a URL prefix) or extension (such as \".php\")"),
        ("[[route]]\npath = \"/\"\ncgi = \"/c\"\nenv = { GOOD = \"1\", BAD = 2 }\n", "gateway.toml:4: route[0].env.BAD: expected a string, got 2"),
        ("[[route]]\npath = \"/\"\ncgi = \"/c\"\nenv = { \"NO-DASH\" = \"1\" }\n", "gateway.toml:4: route[0].env.NO-DASH: not a valid environment variable name"),
        ("[cgi]\nmax_procs = 4\n", "gateway.toml:2: cgi.max_procs: unknown key; did you mean \"max_processes\"?"),
        ("[cgi]\nmax_processes = 0\n", "gateway.toml:2: cgi.max_processes: expected a positive integer, got 0"),
        ("[cgi]\ntimeout = \"forever\"\n", "gateway.toml:2: cgi.timeout: expected a duration in seconds"),
        ("[cgi]\ninterpreters = { pl = \"perl\" }\n", "gateway.toml:2: cgi.interpreters.pl: expected an extension such as \".pl\" as the key"),
        ("[cgi]\ninterpreters = { \".pl\" = 1 }\n", "gateway.toml:2: cgi.interpreters..pl: expected a program such as \"perl\""),
        ("[cgi]\ninterpreters = \"perl\"\n", "gateway.toml:2: cgi.interpreters: expected a table such as { \".pl\" = \"perl\" }, got \"perl\""),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\n[[route]]\npath = \"/s\"\napp = \"a\"\nallow_symlinks = true\n", "gateway.toml:7: route[0].allow_symlinks: applies to cgi, static and php routes only"),
        ("[[route]]\npath = \"/s\"\nstatic = \"/x\"\nindex = []\n", "gateway.toml:4: route[0].index: expected file names such as"),
        ("[[route]]\npath = \"/s\"\nstatic = \"/x\"\nindex = [\"../a.html\"]\n", "gateway.toml:4: route[0].index: expected file names such as"),
        ("[[route]]\npath = \"/s\"\ncgi = \"/x\"\nindex = [\"a.html\"]\n", "gateway.toml:4: route[0].index: applies to static and php routes only"),
        ("[[route]]\npath = \"/s\"\nstatic = \"/x\"\nphp = true\n", "gateway.toml:4: route[0].php: applies to app routes only"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\n[[route]]\nextension = \".php\"\napp = \"a\"\nphp = true\n", "gateway.toml:7: route[0].php: needs a path route"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\n[[route]]\npath = \"/\"\napp = \"a\"\nphp = true\n", "gateway.toml:7: route[0].php: app \"a\" needs root"),
        ("[[route]]\npath = \"/c\"\ncgi = \"/x\"\nallow_symlinks = \"yes\"\n", "gateway.toml:4: route[0].allow_symlinks: expected true or false, got \"yes\""),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\n[[route]]\npath = \"/p\"\napp = \"a\"\ninternal = true\n", "gateway.toml:7: route[0].internal: applies to static routes only"),
        ("[[route]]\npath = \"/p\"\nstatic = \"/x\"\ninternal = 1\n", "gateway.toml:4: route[0].internal: expected true or false, got 1"),
        ("[[route]]\nextension = \".zip\"\nstatic = \"/x\"\ninternal = true\n", "gateway.toml:4: route[0].internal: needs a path route"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\nsendfile_roots = [\"/\"]\n", "gateway.toml:4: app[0].sendfile_roots: \"/\" would let X-Sendfile name any file"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\nsendfile_roots = \"/srv\"\n", "gateway.toml:4: app[0].sendfile_roots: expected"),
        ("[cgi]\nsendfile_roots = [\"/srv/..\"]\n", "gateway.toml:2: cgi.sendfile_roots: \"/srv/..\" would let X-Sendfile name any file"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\ndump_signal = \"SIGKILL\"\n", "gateway.toml:4: app[0].dump_signal: expected one of SIGUSR1"),
        ("[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\nkill_grace = 3\n", "gateway.toml:4: app[0].kill_grace: applies to hosted apps"),
        ("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nrequest_timeout = \"soon\"\n", "gateway.toml:4: app[0].request_timeout:"),
        ("[server]\nmax_requests_jitter = 5\n", "gateway.toml:2: server.max_requests_jitter: has no effect without server.max_requests"),
        ("[server]\nworkers = 3\nworkers = 4\n", "gateway.toml:3: TOML syntax: Error while parsing key-value pair: cannot redefine existing integer 'workers'"),
        ("[server\nworkers = 3\n", "gateway.toml:1: TOML syntax:"),
    ])
    func errorMessage(text: String, message: String) {
        let got = problems(text)
        #expect(got.count == 1, "\(got)")
        #expect(got.first?.hasPrefix(message) == true, "\(got)")
    }

    @Test func everyProblemIsReportedInFileOrder() {
        let got = problems("""
        [server]
        workers = "many"
        threads = 0
        [[app]]
        name = "a"
        command = ["x"]
        [[app]]
        name = "a"
        command = ["y"]
        [[route]]
        path = "/"
        app = "b"
        """)
        #expect(got == [
            "gateway.toml:2: server.workers: expected a positive integer, got \"many\"",
            "gateway.toml:3: server.threads: expected a positive integer, got 0",
            "gateway.toml:8: app[1].name: another app is already named \"a\"",
            "gateway.toml:12: route[0].app: no app named \"b\" (known apps: a); did you mean \"a\"?",
        ])
    }

    @Test func duplicateRoutes() {
        #expect(problems("[[route]]\npath = \"/a\"\nstatic = \"/x\"\n[[route]]\npath = \"/a/\"\nstatic = \"/y\"\n")
                == ["gateway.toml:4: route[1]: another route already matches path /a"])
    }

    @Test func effectiveConfigurationRoundTrips() throws {
        let c = try load(issueExample)
        let text = c.renderTOML()
        let again = try load(text)
        #expect(again.server == c.server)
        #expect(again.limits == c.limits)
        #expect(again.timeouts == c.timeouts)
        #expect(again.log == c.log)
        #expect(again.apps == c.apps)
        #expect(again.routes == c.routes)
        #expect(again.cgi == c.cgi)
        #expect(text.contains("workers = 5"))
        #expect(text.contains("backlog = 2048"))
    }

    @Test func offloadSettingsLoadAndRoundTrip() throws {
        let c = try load("""
            [cgi]
            sendfile_roots = ["/srv/cgi-files"]
            [[app]]
            name = "a"
            connect = "127.0.0.1:9000"
            sendfile_roots = ["/srv/files", "downloads"]
            request_timeout = "30s"
            [[route]]
            path = "/protected"
            static = "/srv/files"
            internal = true
            """)
        #expect(c.apps[0].sendfileRoots.first == "/srv/files" && c.apps[0].sendfileRoots.count == 2)
        #expect(c.apps[0].sendfileRoots[1].hasSuffix("/downloads") && c.apps[0].sendfileRoots[1].hasPrefix("/"))
        #expect(c.routes[0].internalOnly && c.cgi.sendfileRoots == ["/srv/cgi-files"] && c.apps[0].requestTimeout == 30)
        let again = try load(c.renderTOML())
        #expect(again.apps == c.apps && again.routes == c.routes && again.cgi == c.cgi)
    }

    @Test func hostedDeadlineSettingsRoundTrip() throws {
        let c = try load("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nrequest_timeout = 20\nkill_grace = \"1s\"\ndump_signal = \"usr1\"\n")
        #expect(c.apps[0].requestTimeout == 20 && c.apps[0].killGrace == 1 && c.apps[0].dumpSignal == "SIGUSR1")
        #expect(try load(c.renderTOML()).apps == c.apps)
    }

    @Test func serverWatchSettingsRoundTripAndAreChecked() throws {
        let c = try load("""
            [[app]]
            name = "a"
            servers = [{ address = "app1.internal:9000" }, { address = "10.0.0.6:9000", max_conns = 4 }]
            health_interval = "2s"
            health_path = "/health"
            resolve_interval = 60
            """)
        let a = c.apps[0]
        #expect(a.servers.map(\.learnsCapacity) == [true, false] && a.servers.map(\.maxConns) == [8, 4])
        #expect(a.healthInterval == 2 && a.healthTimeout == 1 && a.healthPath == "/health" && a.resolveInterval == 60)
        #expect(a.slotCount == UpstreamServer.learnedCeiling + 4)
        #expect(try load(c.renderTOML()).apps == c.apps)
        #expect(try load("[[app]]\nname = \"a\"\nconnect = \"10.0.0.5:9000\"\nmax_conns = 3\n").apps[0].servers[0].learnsCapacity == false)
        #expect(problems("[[app]]\nname = \"a\"\nconnect = \"10.0.0.5:9000\"\nhealth_interval = 1\nhealth_timeout = 1\n")
                == ["gateway.toml:5: app[0].health_timeout: must be shorter than health_interval (1.0 s), got 1.0 s"])
        #expect(problems("[[app]]\nname = \"a\"\nconnect = \"10.0.0.5:9000\"\nhealth_path = \"health\"\n")
                == ["gateway.toml:4: app[0].health_path: expected a path such as \"/health\", got \"health\""])
        #expect(problems("[[app]]\nname = \"a\"\ncommand = [\"x\"]\nhealth_interval = 1\n")
                == ["gateway.toml:4: app[0].health_interval: applies to connect apps; gatewayd watches its own app processes itself"])
    }

    @Test func commandLineOverrides() throws {
        let c = try load(issueExample)
        var o = ConfigOverrides()
        o.bind = ["0.0.0.0:9000", "[::1]:9001"]
        o.workers = 3
        o.workerClass = "thread"
        o.threads = 2
        o.timeout = 60
        let d = try c.applying(o, baseDirectory: "/tmp")
        #expect(d.server.bind == [.tcp(host: "0.0.0.0", port: 9000), .tcp6(host: "::1", port: 9001)])
        #expect(d.server.workers == 3 && d.server.workerClass == .thread && d.server.threads == 2 && d.server.timeout == 60)

        var bad = ConfigOverrides()
        bad.workers = 0
        bad.workerClass = "gevent"
        #expect(throws: ConfigError.self) { try c.applying(bad, baseDirectory: "/tmp") }
        do {
            _ = try c.applying(bad, baseDirectory: "/tmp")
        } catch {
            #expect(error.issues.map(\.description) == ["command line: --workers: expected 1-1024, got 0",
                                                        "command line: --worker-class: expected one of sync, thread, epoll, got \"gevent\""])
        }
    }
}
