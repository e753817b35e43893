import Foundation
import Testing
import Glibc

/// HTTP/2 on the epoll worker: h2 by ALPN over TLS and h2c with prior knowledge, checked
/// with curl --http2 and nghttp (nghttp2's own client); the flood limits with a hostile
/// client of our own (Apps/h2_flood.py).
@Suite("HTTP/2", .serialized)
struct HTTP2Tests {
    static let dir: String = {
        let d = "/tmp/gatewayd-it-h2-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d + "/files", withIntermediateDirectories: true)
        try? FileManager.default.createDirectory(atPath: d + "/cgi", withIntermediateDirectories: true)
        return d
    }()

    static let big: [UInt8] = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }

    static func site() throws -> String {
        try Data(big).write(to: URL(fileURLWithPath: dir + "/files/big.bin"))
        try "hello over h2\n".write(toFile: dir + "/files/a.txt", atomically: true, encoding: .utf8)
        return """
            [[app]]
            name = "py"
            command = ["python3", "\(HostedAppsTests.pythonApp)"]
            env_copy = ["PATH", "HOME"]
            processes = 2
            [[route]]
            path = "/py"
            app = "py"
            [[route]]
            path = "/files"
            static = "\(dir)/files"
            gzip = true
            [[route]]
            path = "/cgi"
            cgi = "\(repositoryRoot)/apps/bin/cgi-hello"
            """ + "\n" + HostedAppsTests.cAppAtC
    }

    static func curl(_ args: [String]) throws -> (status: Int32, output: String) {
        try HTTPSTests.run("curl", ["-sS", "--max-time", "30", "-w", "\n%{http_version} %{http_code}"] + args)
    }

    /// FastCGI, CGI, static (whole, range, gzip), uploads with and without a length:
    /// the same answers over h2 as over HTTP/1.1.
    func exchanges(_ base: String, _ flag: String) throws {
        let hello = try Self.curl([flag, "-k", base + "/c/hello"]).output
        #expect(hello == "Hello from C (libfcgi)\n\n2 200", "\(hello)")
        #expect(try Self.curl([flag, "-k", base + "/py/hello"]).output == "Hello from Python (flup)\n\n2 200")
        #expect(try Self.curl([flag, "-k", base + "/cgi?x=1"]).output.hasSuffix("2 200"))
        let env = try Self.curl([flag, "-k", base + "/c/env"]).output
        #expect(env.contains("\"SERVER_PROTOCOL\":\"HTTP/2.0\""), "\(env)")  // as nginx says it
        let got = Self.dir + "/got.bin"
        #expect(try Self.curl([flag, "-k", "-o", got, base + "/files/big.bin"]).output.hasSuffix("2 200"))
        #expect(FileManager.default.contents(atPath: got) == Data(Self.big))
        #expect(try Self.curl([flag, "-k", "-r", "1000-1009", "-o", got, base + "/files/big.bin"]).output.hasSuffix("2 206"))
        #expect(FileManager.default.contents(atPath: got) == Data(Self.big[1000...1009]))
        #expect(try Self.curl([flag, "-k", "--compressed", base + "/files/a.txt"]).output == "hello over h2\n\n2 200")
        let upload = Self.dir + "/up.bin"
        try Data(Self.big.prefix(2_000_000)).write(to: URL(fileURLWithPath: upload))
        let sized = try Self.curl([flag, "-k", "--data-binary", "@" + upload, base + "/py/echo"]).output
        #expect(sized.contains("\"length\": 2000000") && sized.hasSuffix("2 200"), "\(sized)")
        let chunked = try Self.curl([flag, "-k", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + upload, base + "/c/echo"]).output
        #expect(chunked.contains("\"length\":2000000") && chunked.hasSuffix("2 200"), "\(chunked)")
        let streamed = try Self.curl([flag, "-k", "-o", got, base + "/py/stream?bytes=4000000"]).output
        #expect(streamed.hasSuffix("2 200") && (try? FileManager.default.attributesOfItem(atPath: got)[.size] as? Int) == 4_000_000)
        #expect(try Self.curl([flag, "-k", base + "/nowhere"]).output.hasSuffix("2 404"))
    }

    @Test("h2 by ALPN over TLS: every exchange through curl --http2; nghttp runs 40 streams on one connection")
    func overTLS() throws {
        let cert = try HTTPSTests.certificate("h2", names: ["localhost"])
        let server = try GatewaydServer(config: Self.site() + "\n" + HTTPSTests.tls(cert), workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let base = "https://localhost:\(server.port)"
        try exchanges(base, "--http2")
        // 40 requests at once on one connection (nghttp -m), all answered.
        let many = try HTTPSTests.run("nghttp", ["-ns", "-m", "40", base + "/py/sleep?ms=50"])
        #expect(many.status == 0, "\(many.output.suffix(500))")
        #expect(server.accessLog.components(separatedBy: "\"GET /py/sleep?ms=50 HTTP/2.0\" 200").count - 1 == 40)
        // HTTP/1.1 clients keep working on the same port.
        #expect(try Self.curl(["--http1.1", "-k", base + "/c/hello"]).output.hasSuffix("1.1 200"))
    }

    @Test("h2c with prior knowledge when server.h2c is on; never without it, nor on thread and sync workers (ALPN http/1.1)")
    func cleartextAndOtherClasses() throws {
        let server = try GatewaydServer(config: Self.site(), server: "h2c = true", workers: 1, workerClass: "epoll")
        defer { server.stop() }
        try exchanges("http://127.0.0.1:\(server.port)", "--http2-prior-knowledge")
        #expect(try Self.curl(["http://127.0.0.1:\(server.port)/c/hello"]).output.hasSuffix("1.1 200"))

        let cert = try HTTPSTests.certificate("h2", names: ["localhost"])
        for workerClass in ["thread", "sync"] {
            let s = try GatewaydServer(config: Self.site() + "\n" + HTTPSTests.tls(cert), workers: 1, workerClass: workerClass)
            defer { s.stop() }
            #expect(try Self.curl(["--http2", "-k", "https://localhost:\(s.port)/c/hello"]).output.hasSuffix("1.1 200"), "\(workerClass)")
        }
        let off = try GatewaydServer(config: Self.site() + "\n" + HTTPSTests.tls(cert), server: "http2 = false", workers: 1, workerClass: "epoll")
        defer { off.stop() }
        #expect(try Self.curl(["--http2", "-k", "https://localhost:\(off.port)/c/hello"]).output.hasSuffix("1.1 200"))
    }

    @Test("an answer before the body's end (413) comes whole, and the connection goes on")
    func earlyAnswer() throws {
        let server = try GatewaydServer(config: Self.site() + "\n[limits]\nmax_body_size = 100000\n", server: "h2c = true",
                                        workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let upload = Self.dir + "/too-big.bin"
        try Data(Self.big.prefix(3_000_000)).write(to: URL(fileURLWithPath: upload))
        let r = try Self.curl(["--http2-prior-knowledge", "--data-binary", "@" + upload, "http://127.0.0.1:\(server.port)/py/echo"])
        #expect(r.status == 0 && r.output.contains("413") && r.output.hasSuffix("2 413"), "\(r)")
        // The connection and the worker go on.
        let next = try HTTPSTests.run("nghttp", ["-n", "-s", "http://127.0.0.1:\(server.port)/c/hello", "http://127.0.0.1:\(server.port)/files/a.txt"])
        #expect(next.status == 0, "\(next.output.suffix(400))")
    }

    @Test("a HUP with 60 streams in flight: GOAWAY naming the last stream taken, and every one of them answered")
    func hupUnderLoad() throws {
        let cert = try HTTPSTests.certificate("h2", names: ["localhost"])
        let server = try GatewaydServer(config: Self.site() + "\n" + HTTPSTests.tls(cert), workers: 2, workerClass: "epoll")
        defer { server.stop() }
        Thread.detachNewThread {
            usleep(500_000)
            server.signal(SIGHUP)
        }
        // (h2load is no judge here: it counts the streams a GOAWAY refuses, which a client
        // may send again, as failed; nginx's reload shows the same.)
        let r = try HTTPSTests.run("nghttp", ["-nv", "-m", "60", "https://localhost:\(server.port)/c/sleep?ms=100"])
        #expect(r.status == 0, "\(r.output.suffix(600))")
        #expect(r.output.components(separatedBy: ":status: 200").count - 1 == 60)
        #expect(r.output.contains("recv GOAWAY frame"), "\(r.output.suffix(600))")
        #expect(server.errorLog.contains("HUP: configuration reloaded"), "\(server.errorLog.suffix(500))")
    }

    @Test("floods end the connection: rapid reset, PING, SETTINGS, CONTINUATION; the worker's memory stays flat")
    func floods() throws {
        let server = try GatewaydServer(config: Self.site(), server: "h2c = true", workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let flood = repositoryRoot + "/Tests/IntegrationTests/Apps/h2_flood.py"
        func run(_ mode: String, _ count: Int) throws -> [String: Any] {
            let out = try HTTPSTests.run("python3", [flood, String(server.port), mode, String(count)]).output
            return (try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? ["error": out]
        }
        let worker = try #require(server.workerPIDs().first)
        func rss() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        _ = try run("reset", 3000)  // warm up: the first connection's buffers
        let before = rss()
        for _ in 0..<5 {
            let r = try run("reset", 5000)
            #expect(r["closed"] as? Bool == true && r["goaway"] != nil && !(r["goaway"] is NSNull), "\(r)")
        }
        let after = rss()
        #expect(after - before < 8 * 1024, "RSS \(before) kB -> \(after) kB after 25,000 resets")
        for mode in ["ping", "settings"] {
            let r = try run(mode, 5000)
            #expect(r["closed"] as? Bool == true && r["goaway"] as? Int == 11, "\(mode): \(r)")  // ENHANCE_YOUR_CALM
        }
        let c = try run("continuation", 5000)
        #expect(c["closed"] as? Bool == true && (c["sent"] as? Int ?? 5000) < 5000, "\(c)")
        // Flow control: a stream given no window holds only itself.
        let stall = try HTTPSTests.run("python3", [flood, String(server.port), "stall", "/files/big.bin", "/c/hello"]).output
        #expect(stall.contains("\"small_done\": true") && stall.contains("\"big_bytes\": 0"), "\(stall)")
        // The worker serves on.
        #expect(try Self.curl(["--http2-prior-knowledge", "http://127.0.0.1:\(server.port)/c/hello"]).output.hasSuffix("2 200"))
        #expect(server.workerPIDs() == [worker])
    }
}
