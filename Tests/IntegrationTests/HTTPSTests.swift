import Foundation
import GatewaySystem
import Testing
import Glibc

/// TLS on a listener, as clients see it: curl, `openssl s_client` and Python's ssl
/// module against certificates `openssl req` makes here.
@Suite("HTTPS", .serialized)
struct HTTPSTests {
    static let dir: String = {
        let d = "/tmp/gatewayd-it-tls-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// A self-signed certificate for `names` (the first is its CN), made once per label;
    /// `days` < 0: one that has expired.
    static func certificate(_ label: String, names: [String], days: Int = 30) throws -> (cert: String, key: String) {
        let cert = "\(dir)/\(label).pem", key = "\(dir)/\(label).key"
        if FileManager.default.fileExists(atPath: cert) { return (cert, key) }
        let san = names.map { "DNS:\($0)" }.joined(separator: ",")
        if days > 0 {
            _ = try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                                    "-out", cert, "-subj", "/CN=\(names[0])", "-addext", "subjectAltName=\(san)", "-days", String(days)])
        } else {
            _ = try run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                                    "-out", cert + ".csr", "-subj", "/CN=\(names[0])"])
            _ = try run("openssl", ["x509", "-req", "-in", cert + ".csr", "-signkey", key, "-out", cert, "-days", String(days)])
        }
        return (cert, key)
    }

    /// Runs a tool; its exit status and output (stdout and stderr together).
    @discardableResult
    static func run(_ tool: String, _ args: [String], input: String = "") throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let out = Foundation.Pipe(), inp = Foundation.Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = inp
        try p.run()
        inp.fileHandleForWriting.write(Data(input.utf8))
        try? inp.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func tls(_ cert: (cert: String, key: String)) -> String {
        "[[tls]]\nbind = \"127.0.0.1:$PORT\"\ncert = \"\(cert.cert)\"\nkey = \"\(cert.key)\"\n"
    }

    static func site(_ files: String) -> String {
        HostedAppsTests.cAppAtC + "[[route]]\npath = \"/files\"\nstatic = \"\(files)\"\n"
    }

    static func curl(_ port: Int, _ path: String, _ extra: [String] = []) throws -> (status: Int32, output: String) {
        try run("curl", ["-sSk", "--max-time", "20"] + extra + ["https://localhost:\(port)\(path)"])
    }

    @Test("FastCGI, CGI variables, a static file, an upload over HTTPS; plain HTTP on the port gets 400", arguments: workerClasses)
    func basics(workerClass: String) throws {
        let cert = try Self.certificate("site", names: ["localhost"])
        let files = Self.dir + "/files-\(workerClass)"
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        try Data(big).write(to: URL(fileURLWithPath: files + "/big.bin"))
        let server = try GatewaydServer(config: Self.site(files) + "\n" + Self.tls(cert), workers: 1, workerClass: workerClass)
        defer { server.stop() }
        #expect(try Self.curl(server.port, "/c/hello").output == "Hello from C (libfcgi)\n")
        let env = try Self.curl(server.port, "/c/env").output
        #expect(env.contains("\"HTTPS\":\"on\"") && env.contains("\"REQUEST_SCHEME\":\"https\""), "\(env)")
        // A static file: read and encrypted a piece at a time, byte-identical; a range.
        let got = Self.dir + "/got-\(workerClass).bin"
        #expect(try Self.curl(server.port, "/files/big.bin", ["-o", got]).status == 0)
        #expect(FileManager.default.contents(atPath: got) == Data(big))
        #expect(try Self.curl(server.port, "/files/big.bin", ["-r", "1000-1009", "-o", got]).status == 0)
        #expect(FileManager.default.contents(atPath: got) == Data(big[1000...1009]))
        // An upload, and two requests on one kept connection.
        let upload = Self.dir + "/up-\(workerClass).bin"
        try Data(big.prefix(1_000_000)).write(to: URL(fileURLWithPath: upload))
        let echo = try Self.curl(server.port, "/c/echo", ["--data-binary", "@" + upload]).output
        #expect(echo.contains("\"length\":1000000"), "\(echo)")
        let twice = try Self.curl(server.port, "/c/hello", ["-w", "%{num_connects}\\n", "https://localhost:\(server.port)/c/hello"]).output
        #expect(twice.hasSuffix("Hello from C (libfcgi)\n0\n"), "\(twice)")
        // Plain HTTP on the TLS port: nginx's 400, then a close.
        let plain = try http(server.port, "GET", "/c/hello")
        #expect(plain.status == 400 && plain.text.contains("plain HTTP request was sent to HTTPS port"))
        #expect(DrainTests.loudLines(server.errorLog).isEmpty, "\(DrainTests.loudLines(server.errorLog))")
    }

    @Test("a garbage ClientHello is closed; a client that stalls mid-handshake is cut at the header timeout", arguments: workerClasses)
    func badClients(workerClass: String) throws {
        let cert = try Self.certificate("site", names: ["localhost"])
        let server = try GatewaydServer(config: Self.site(Self.dir) + "\n" + Self.tls(cert), server: "[timeouts]\nheader = 1",
                                        workers: 1, workerClass: workerClass)
        defer { server.stop() }
        // A record header that says handshake, then junk: at most a TLS alert, then a close.
        let junk = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        try junk.writeAll([0x16, 0x03, 0x01, 0x00, 0x20] + Array(repeating: 0x41, count: 32))
        #expect(try Self.readUntilClosed(junk, within: 5) < 64)
        try? junk.close()
        // Half a ClientHello, then silence: cut after about a second.
        let stalled = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        try stalled.writeAll([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
        let start = Date()
        _ = try Self.readUntilClosed(stalled, within: 10)
        let took = Date().timeIntervalSince(start)
        #expect(took > 0.5 && took < 5, "\(took)")
        try? stalled.close()
        // The worker still serves.
        #expect(try Self.curl(server.port, "/c/hello").output == "Hello from C (libfcgi)\n")
    }

    /// Reads until EOF (or a reset); the bytes read. Throws if still open after `within` s.
    static func readUntilClosed(_ fd: FileDescriptor, within seconds: Double) throws -> Int {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            guard try fd.waitReadable(timeoutMilliseconds: 100) else { continue }
            guard let n = try? fd.read(into: &buffer, from: 0) else { return total }
            if n == 0 { return total }
            total += n
        }
        throw TestFailure("the connection is still open after \(seconds) s")
    }

    @Test("SNI picks the certificate; ALPN h2 or http/1.1 as the client asks; sessions resume on any of the workers")
    func sniALPNResumption() throws {
        let a = try Self.certificate("a", names: ["a.test"]), b = try Self.certificate("b", names: ["b.test", "*.b.test"])
        let server = try GatewaydServer(config: Self.site(Self.dir) + "\n" + Self.tls(a) + Self.tls(b), workers: 2, workerClass: "epoll")
        defer { server.stop() }
        // (s_client stays a moment before its input ends: TLS 1.3 tickets come after the handshake.)
        func sClient(_ extra: [String]) throws -> String {
            try Self.run("sh", ["-c", "sleep 0.3 | openssl s_client -connect 127.0.0.1:\(server.port) " + extra.joined(separator: " ")]).output
        }
        #expect(try sClient(["-servername", "x.b.test"]).contains("subject=CN = b.test"))
        #expect(try sClient(["-servername", "a.test"]).contains("subject=CN = a.test"))
        #expect(try sClient(["-servername", "unknown.test"]).contains("subject=CN = a.test"))  // the first is the default
        #expect(try sClient(["-servername", "a.test", "-alpn", "h2,http/1.1"]).contains("ALPN protocol: h2"))  // an epoll worker
        #expect(try sClient(["-servername", "a.test", "-alpn", "http/1.1"]).contains("ALPN protocol: http/1.1"))
        // Resumption: a ticket from one connection opens later ones, whichever worker takes them.
        let session = Self.dir + "/session.pem"
        #expect(try sClient(["-servername", "a.test", "-sess_out", session]).contains("New, TLSv1.3"))
        var reused = 0
        for _ in 0..<6 where try sClient(["-servername", "a.test", "-sess_in", session]).contains("Reused, TLSv1.3") { reused += 1 }
        #expect(reused == 6)
    }

    @Test("the master rotates the ticket key: a session resumes across one rotation, not two")
    func ticketRotation() throws {
        let a = try Self.certificate("a", names: ["a.test"])
        let server = try GatewaydServer(config: Self.site(Self.dir) + "\n" + Self.tls(a), server: "tls_ticket_rotation = 2",
                                        workers: 2, workerClass: "epoll")
        defer { server.stop() }
        let session = Self.dir + "/rotating.pem"
        func sClient(_ extra: String) throws -> String {
            try Self.run("sh", ["-c", "sleep 0.3 | openssl s_client -connect 127.0.0.1:\(server.port) -servername a.test " + extra]).output
        }
        func rotations() -> Int { server.errorLog.components(separatedBy: "TLS: new session ticket key").count - 1 }
        // Just after a rotation, a ticket; it opens at once.
        let r0 = rotations()
        #expect(HostedAppsTests.eventually(5) { rotations() > r0 })
        let start = rotations()
        #expect(try sClient("-sess_out \(session)").contains("New, TLSv1.3"))
        #expect(try sClient("-sess_in \(session)").contains("Reused, TLSv1.3"))
        // After the next rotation the ticket's key is the previous one: it still opens.
        #expect(HostedAppsTests.eventually(5) { rotations() > start })
        #expect(try sClient("-sess_in \(session)").contains("Reused, TLSv1.3"))
        // After a second one it is gone: a full handshake, which works as well.
        #expect(HostedAppsTests.eventually(5) { rotations() > start + 1 })
        let out = try sClient("-sess_in \(session)")
        #expect(out.contains("New, TLSv1.3") && !out.contains("Reused"), "\(out.prefix(300))")
    }

    @Test("a HUP picks up a renewed certificate under HTTPS keep-alive load: 0 failed requests", arguments: ["thread", "epoll"])
    func hupNewCertificate(workerClass: String) throws {
        let old = try Self.certificate("old", names: ["localhost"]), new = try Self.certificate("new", names: ["renewed.test", "localhost"])
        let live = (cert: Self.dir + "/live-\(workerClass).pem", key: Self.dir + "/live-\(workerClass).key")
        func install(_ c: (cert: String, key: String)) throws {
            for (from, to) in [(c.cert, live.cert), (c.key, live.key)] {
                try? FileManager.default.removeItem(atPath: to + ".tmp")
                try FileManager.default.copyItem(atPath: from, toPath: to + ".tmp")
                _ = rename(to + ".tmp", to)  // as certbot's deploy does: a whole new file
            }
        }
        try install(old)
        let server = try GatewaydServer(config: Self.site(Self.dir) + "\n" + Self.tls(live), server: "keepalive = 2\nthreads = 4",
                                        workers: 2, workerClass: workerClass)
        defer { server.stop() }
        func subject() throws -> String {
            try Self.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)"], input: "").output
        }
        #expect(try subject().contains("subject=CN = localhost"))
        let load = try DrainTests.Load(port: server.port, path: "/c/hello", tls: true)
        usleep(300_000)
        try install(new)
        server.signal(SIGHUP)
        #expect(HostedAppsTests.eventually(10) { (try? subject())?.contains("subject=CN = renewed.test") == true })
        usleep(500_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(workerClass): \(result.errors)")
        #expect(result.requests > 100)
    }

    @Test("OCSP stapling from a file: clients that ask get it; check refuses a file that is no OCSP response")
    func ocspStapling() throws {
        // A CA, a leaf it signs, and an OCSP response for the leaf, all by openssl.
        let d = Self.dir + "/ocsp"
        try? FileManager.default.removeItem(atPath: d)
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try Self.run("openssl", ["req", "-x509"] + ec + ["-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-subj", "/CN=test-ca", "-days", "2"])
        try Self.run("openssl", ["req", "-new"] + ec + ["-keyout", d + "/leaf.key", "-out", d + "/leaf.csr", "-subj", "/CN=localhost"])
        try "subjectAltName=DNS:localhost\n".write(toFile: d + "/ext", atomically: true, encoding: .utf8)
        try Self.run("openssl", ["x509", "-req", "-in", d + "/leaf.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key", "-CAcreateserial",
                                 "-out", d + "/leaf.pem", "-days", "2", "-extfile", d + "/ext"])
        FileManager.default.createFile(atPath: d + "/index.txt", contents: nil)
        try Self.run("openssl", ["ocsp", "-index", d + "/index.txt", "-rsigner", d + "/ca.pem", "-rkey", d + "/ca.key", "-CA", d + "/ca.pem",
                                 "-issuer", d + "/ca.pem", "-cert", d + "/leaf.pem", "-respout", d + "/resp.der", "-ndays", "1"])
        let tls = "[[tls]]\nbind = \"127.0.0.1:$PORT\"\ncert = \"\(d)/leaf.pem\"\nkey = \"\(d)/leaf.key\"\nocsp = \"\(d)/resp.der\"\n"
        let server = try GatewaydServer(config: Self.site(Self.dir) + "\n" + tls, workers: 1, workerClass: "epoll")
        defer { server.stop() }
        let asked = try Self.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)", "-status"], input: "").output
        #expect(asked.contains("OCSP Response Status: successful"), "\(asked.prefix(600))")
        let notAsked = try Self.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)"], input: "").output
        #expect(!notAsked.contains("OCSP Response Status"))
        // A file that is not an OCSP response: refused at its line.
        let path = Self.dir + "/ocsp-check.toml"
        try ("[server]\nbind = [\"127.0.0.1:8443\"]\n\n[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(d)/leaf.pem\"\nkey = \"\(d)/leaf.key\"\n"
             + "ocsp = \"\(d)/leaf.pem\"\n").write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try Self.run(gatewaydBinary, ["check", "-c", path])
        #expect(bad.status == 1 && bad.output.contains("\(path):8: tls[0].ocsp: \(d)/leaf.pem: not a DER OCSP response"), "\(bad.output)")
    }

    @Test("gatewayd check: an expired certificate, a key of another certificate, a missing key, each at its line")
    func check() throws {
        let a = try Self.certificate("a", names: ["a.test"]), b = try Self.certificate("b", names: ["b.test"])
        let expired = try Self.certificate("expired", names: ["old.test"], days: -1)
        let path = Self.dir + "/check.toml"
        func check(_ cert: String, _ key: String) throws -> (status: Int32, output: String) {
            let text = "[server]\nbind = [\"127.0.0.1:8443\"]\n\n[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(cert)\"\nkey = \"\(key)\"\n"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try Self.run(gatewaydBinary, ["check", "-c", path])
        }
        #expect(try check(a.cert, a.key).status == 0)
        let e = try check(expired.cert, expired.key)
        #expect(e.status == 1 && e.output.contains("\(path):6: tls[0].cert: the certificate \(expired.cert) expired on "), "\(e.output)")
        let m = try check(a.cert, b.key)
        #expect(m.status == 1 && m.output.contains("\(path):7: tls[0].key: \(b.key): the key does not match the certificate"), "\(m.output)")
        let missing = try check(a.cert, Self.dir + "/none.key")
        #expect(missing.status == 1 && missing.output.contains("\(path):7: tls[0].key: \(Self.dir)/none.key: cannot load the key"), "\(missing.output)")
    }
}
