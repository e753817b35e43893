import Testing
@testable import GatewayConfig

@Suite("line index")
struct TOMLLineIndexTests {
    @Test func multiLineValuesDoNotConfuseLines() {
        let text = """
        # comment with key = "x"
        title = \"\"\"
        [not.a.table]
        still = "string"
        \"\"\"
        [server]
        bind = [
          "a:1", # comment ] with bracket
          "b:2",
        ]
        workers = 4
        [[app]]
        name = 'lit#eral'
        env = { A = "1", "B.C" = "2" }
        [[app]]
        name = "second"
        """
        let idx = TOMLLineIndex(text: text)
        #expect(idx.line(for: "title") == 2)
        #expect(idx.line(for: "server") == 6)
        #expect(idx.line(for: "server.bind") == 7)
        #expect(idx.line(for: "server.workers") == 11)
        #expect(idx.line(for: "app[0]") == 12)
        #expect(idx.line(for: "app[0].name") == 13)
        #expect(idx.line(for: "app[0].env.A") == 14)
        #expect(idx.line(for: "app[0].env.B.C") == 14)
        #expect(idx.line(for: "app[1].name") == 16)
        #expect(idx.line(for: "app[1].missing") == 15)
        #expect(idx.line(for: "not.a.table") == nil)
    }
}

@Suite("value syntaxes")
struct ConfigValuesTests {
    @Test func sizes() {
        #expect(ConfigValues.parseSize("64K") == 65536)
        #expect(ConfigValues.parseSize("100M") == 100 << 20)
        #expect(ConfigValues.parseSize("2GiB") == 2 << 30)
        #expect(ConfigValues.parseSize("512") == 512)
        #expect(ConfigValues.parseSize("12X") == nil)
        #expect(ConfigValues.parseSize("99999999999G") == nil)
    }

    @Test func durations() {
        #expect(ConfigValues.parseDuration("500ms") == 0.5)
        #expect(ConfigValues.parseDuration("30s") == 30)
        #expect(ConfigValues.parseDuration("5m") == 300)
        #expect(ConfigValues.parseDuration("1h") == 3600)
        #expect(ConfigValues.parseDuration("2.5") == 2.5)
        #expect(ConfigValues.parseDuration("-1s") == nil)
        #expect(ConfigValues.parseDuration("abc") == nil)
    }

    @Test func binds() throws {
        #expect(try ConfigValues.parseBind("[::]:80").get() == .tcp6(host: "::", port: 80))
        #expect(try ConfigValues.parseBind("unix:/run/x.sock").get() == .unix(path: "/run/x.sock"))
        #expect(try ConfigValues.parseBind("example.com:443").get() == .tcp(host: "example.com", port: 443))
        #expect(throws: ConfigValues.ValueError.self) { try ConfigValues.parseBind(":80").get() }
        #expect(throws: ConfigValues.ValueError.self) { try ConfigValues.parseBind("unix:").get() }
        #expect(throws: ConfigValues.ValueError.self) { try ConfigValues.parseBind("[1.2.3.4]:80").get() }
    }

    @Test("processes defaults to what the worker class can have in flight", arguments: [
        ("sync", 3), ("thread", 3 * 6), ("epoll", 8),
    ])
    func defaultProcessesFollowTheWorkerClass(workerClass: String, expected: Int) throws {
        let text = "[server]\nworkers = 3\nthreads = 6\nworker_class = \"\(workerClass)\"\n[[app]]\nname = \"a\"\ncommand = [\"x\"]\n"
        let c = try ConfigLoader.load(text: text, file: "gateway.toml", baseDirectory: "/etc", cpuCount: 4)
        #expect(c.apps[0].slotCount == expected)
        #expect(c.apps[0].cwd == "/etc", "a hosted app runs in the file's directory by default")
    }

    @Test func cgiSettings() throws {
        let c = try load("""
        [cgi]
        max_processes = 8
        timeout = "90s"
        kill_grace = "500ms"
        queue_timeout = 0
        interpreters = { ".pl" = "perl", ".rb" = "bin/ruby" }
        [[route]]
        path = "/cgi-bin"
        cgi = "cgi"
        allow_symlinks = true
        env = { GIT_PROJECT_ROOT = "/srv/git" }
        """)
        #expect(c.cgi.maxProcesses == 8 && c.cgi.timeout == 90 && c.cgi.killGrace == 0.5 && c.cgi.queueTimeout == 0)
        #expect(c.cgi.interpreters == [".pl": "perl", ".rb": "/etc/gatewayd/bin/ruby"])
        #expect(c.routes[0].target == .cgi("/etc/gatewayd/cgi") && c.routes[0].allowSymlinks)
        let again = try load(c.renderTOML())
        #expect(again.cgi == c.cgi && again.routes == c.routes)
        #expect(try load("").cgi == CGIConfig())
    }

    @Test func staticAndPHPRoutesRoundTrip() throws {
        let c = try load("""
        [[app]]
        name = "fpm"
        connect = "unix:/run/php.sock"
        root = "www"
        [[route]]
        path = "/"
        app = "fpm"
        php = true
        allow_symlinks = true
        [[route]]
        path = "/assets"
        static = "assets"
        index = ["index.htm", "default.html"]
        [[route]]
        path = "/docs"
        static = "docs"
        """)
        #expect(c.routes[0].php && c.routes[0].index == ["index.php"] && c.routes[0].allowSymlinks)
        #expect(c.routes[1].target == .static("/etc/gatewayd/assets") && c.routes[1].index == ["index.htm", "default.html"])
        #expect(c.routes[2].index == ["index.html"] && !c.routes[2].php)
        #expect(try load(c.renderTOML()).routes == c.routes)
    }
}

@Suite("forwarded_allow_ips, proxy_protocol, metrics_path")
struct ProxySettingsTests {
    @Test func ipRanges() throws {
        let net = try #require(IPRange("10.0.0.0/8"))
        #expect(net.contains("10.200.3.4") && !net.contains("11.0.0.1") && !net.contains("::1"))
        let one = try #require(IPRange("127.0.0.1"))
        #expect(one.contains("127.0.0.1") && !one.contains("127.0.0.2") && one.contains("::ffff:127.0.0.1"))
        let v6 = try #require(IPRange("2001:db8::/32"))
        #expect(v6.contains("2001:db8:cafe::17") && v6.contains("2001:0db8:0:0:0:0:0:1") && !v6.contains("2001:db9::1"))
        #expect(try #require(IPRange("::1")).contains("0:0:0:0:0:0:0:1"))
        #expect(IPRange.everyone.contains("203.0.113.9"))
        for bad in ["10.0.0.0/33", "300.1.1.1", "1.2.3", "::1::2", "fe80::/129", "host.example", "", "1:2:3:4:5:6:7:8:9"] {
            #expect(IPRange(bad) == nil, "\(bad)")
        }
    }

    @Test func settings() throws {
        let c = try load("""
        [server]
        bind = ["127.0.0.1:8000", "127.0.0.1:8001"]
        forwarded_allow_ips = ["127.0.0.1", "10.0.0.0/8"]
        proxy_protocol = ["127.0.0.1:8001"]
        metrics_path = "/metrics"
        """)
        #expect(c.server.forwardedAllowIPs.map(\.description) == ["127.0.0.1", "10.0.0.0/8"])
        #expect(c.server.proxyProtocol == [.tcp(host: "127.0.0.1", port: 8001)])
        #expect(c.server.metricsPath == "/metrics")
        let again = try load(c.renderTOML())
        #expect(again.server == c.server)
        #expect(try load("[server]\nproxy_protocol = true\n").server.proxyProtocol == [.tcp(host: "127.0.0.1", port: 8000)])
        #expect(problems("[server]\nforwarded_allow_ips = [\"10.0.0.0/40\"]\n").first?.hasPrefix("gateway.toml:2: server.forwarded_allow_ips: expected addresses or networks") == true)
        #expect(problems("[server]\nproxy_protocol = [\"127.0.0.1:9\"]\n").first?.hasPrefix("gateway.toml:2: server.proxy_protocol: \"127.0.0.1:9\" is not one of the bind addresses") == true)
        #expect(problems("[server]\nmetrics_path = \"metrics\"\n").first?.hasPrefix("gateway.toml:2: server.metrics_path: must be a path") == true)
    }

    @Test("hardening settings: forwarded_header, status_allow, deny, allow, body_total, server_name")
    func hardeningSettings() throws {
        let d = try load("")
        #expect(d.server.forwardedHeader == .xForwardedFor)
        #expect(d.server.statusAllow.map(\.description) == ["127.0.0.0/8", "::1"])
        #expect(d.timeouts.bodyTotal == 60)
        #expect(d.server.serverName == nil)
        let text = d.renderTOML()
        for line in ["forwarded_header = \"x-forwarded-for\"", "status_allow = [\"127.0.0.0/8\", \"::1\"]", "body_total = 60"] {
            #expect(text.contains(line), "gatewayd check shows \(line)")
        }
        let c = try load("""
        [server]
        forwarded_header = "forwarded"
        status_allow = ["10.0.0.0/8"]
        server_name = "example.com"
        [timeouts]
        body_total = "2m"
        [[route]]
        path = "/inc"
        deny = true
        [[route]]
        path = "/admin"
        static = "/srv/admin"
        allow = ["192.168.0.0/16", "::1"]
        [[route]]
        path = "/vendor"
        static = "/srv/vendor"
        deny = true
        """)
        #expect(c.server.forwardedHeader == .forwarded)
        #expect(c.server.statusAllow.map(\.description) == ["10.0.0.0/8"])
        #expect(c.server.serverName == "example.com")
        #expect(c.timeouts.bodyTotal == 120)
        #expect(c.routes[0].deny && c.routes[0].target == .deny)
        #expect(!c.routes[1].deny && c.routes[1].allow.map(\.description) == ["192.168.0.0/16", "::1"])
        #expect(c.routes[2].deny && c.routes[2].target == .static("/srv/vendor"))
        let again = try load(c.renderTOML())
        #expect(again.server == c.server && again.routes == c.routes && again.timeouts == c.timeouts)

        #expect(problems("[server]\nforwarded_header = \"x-real-ip\"\n")
                == ["gateway.toml:2: server.forwarded_header: expected one of x-forwarded-for, forwarded, got \"x-real-ip\""])
        #expect(problems("[server]\nstatus_allow = [\"localhost\"]\n").first?.hasPrefix("gateway.toml:2: server.status_allow: expected addresses or networks") == true)
        #expect(problems("[[route]]\npath = \"/a\"\nstatic = \"/x\"\nallow = [\"1.2.3.4/33\"]\n").first?.hasPrefix("gateway.toml:4: route[0].allow: expected addresses") == true)
        #expect(problems("[[route]]\npath = \"/a\"\nstatic = \"/x\"\nallow = []\n") == ["gateway.toml:4: route[0].allow: lists no one; use deny = true to refuse everyone"])
        #expect(problems("[[route]]\npath = \"/a\"\ndeny = \"yes\"\n").contains("gateway.toml:3: route[0].deny: expected true or false, got \"yes\""))
        #expect(problems("[[route]]\npath = \"/a\"\ndeny = true\nallow = [\"::1\"]\n") == ["gateway.toml:4: route[0].allow: has no effect with deny = true (everyone gets 403)"])
        #expect(problems("[[route]]\npath = \"/a\"\n") == ["gateway.toml:1: route[0]: needs one of app, cgi or static (or deny = true)"])
        #expect(problems("[timeouts]\nbody_total = 0\n").first?.hasPrefix("gateway.toml:2: timeouts.body_total:") == true)
    }
}
