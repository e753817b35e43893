import Foundation
import Testing
@testable import TLS

/// Certificates made by `openssl req` for the tests, in a temporary directory.
enum TestCertificates {
    static let dir: String = {
        let d = NSTemporaryDirectory() + "gatewayd-tls-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// A self-signed certificate for `names` (the first is the CN) valid `days` (a
    /// negative number makes one that has expired). Returns (cert, key) paths.
    /// Tests run in parallel and share the files: one makes them while the others wait.
    static let lock = NSLock()

    static func make(_ label: String, names: [String], days: Int = 30) throws -> (cert: String, key: String) {
        lock.lock()
        defer { lock.unlock() }
        let cert = "\(dir)/\(label).pem", key = "\(dir)/\(label).key"
        if FileManager.default.fileExists(atPath: cert) { return (cert, key) }
        let san = names.map { "DNS:\($0)" }.joined(separator: ",")
        if days > 0 {
            try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                "-keyout", key, "-out", cert, "-subj", "/CN=\(names[0])", "-addext", "subjectAltName=\(san)",
                                "-days", String(days)])
        } else {
            // Expired: signed with a validity that ended a day before it began.
            try run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                "-keyout", key, "-out", cert + ".csr", "-subj", "/CN=\(names[0])"])
            try run("openssl", ["x509", "-req", "-in", cert + ".csr", "-signkey", key, "-out", cert, "-days", String(days)])
        }
        return (cert, key)
    }

    static func run(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}

/// The TLS connection, sans-IO: a server and a client in one process, bytes passed by hand.
@Suite struct TLSConnectionTests {
    /// Moves ciphertext both ways until neither has anything to say; the plaintext the
    /// server read.
    @discardableResult
    static func pump(_ client: TLSConnection, _ server: TLSConnection, rounds: Int = 10) -> (server: [UInt8], client: [UInt8], failed: String?) {
        var fromServer: [UInt8] = [], fromClient: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<rounds {
            var wire: [UInt8] = []
            client.takeOutput(into: &wire)
            server.receive(wire[...])
            read: while true {
                switch server.read(into: &buffer) {
                case .bytes(let n): fromClient += buffer[0..<n]
                case .failed(let why): return (fromClient, fromServer, why)
                default: break read
                }
            }
            wire = []
            server.takeOutput(into: &wire)
            client.receive(wire[...])
            read: while true {
                switch client.read(into: &buffer) {
                case .bytes(let n): fromServer += buffer[0..<n]
                case .failed(let why): return (fromClient, fromServer, why)
                default: break read
                }
            }
        }
        return (fromClient, fromServer, nil)
    }

    /// The handshake: the client's hello, then bytes back and forth until both are done.
    static func connect(_ client: TLSConnection, _ server: TLSConnection) {
        _ = client.handshake()
        pump(client, server)
        #expect(client.handshakeDone && server.handshakeDone)
    }

    @Test("a handshake and bytes both ways; ALPN picks h2 when on, http/1.1 otherwise")
    func handshakeAndALPN() throws {
        let (cert, key) = try TestCertificates.make("site", names: ["site.test", "www.site.test"])
        for (h2, offered, expected) in [(true, ["h2", "http/1.1"], "h2"), (false, ["h2", "http/1.1"], "http/1.1"), (true, [], "")] {
            let server = TLSConnection(try TLSContext(cert: cert, key: key, http2: h2))
            let client = TLSConnection(TLSContext.client(alpn: offered), server: false, serverName: "site.test")
            Self.connect(client, server)
            client.write(Array("GET / HTTP/1.1\r\n\r\n".utf8)[...])
            let r = Self.pump(client, server)
            #expect(r.failed == nil)
            #expect(String(decoding: r.server, as: UTF8.self) == "GET / HTTP/1.1\r\n\r\n")
            server.write(Array("HTTP/1.1 200 OK\r\n\r\n".utf8)[...])
            #expect(String(decoding: Self.pump(client, server).client, as: UTF8.self) == "HTTP/1.1 200 OK\r\n\r\n")
            #expect(server.alpn == expected && client.alpn == expected, "\(h2) \(offered)")
            #expect(server.serverName == "site.test" && server.version == "TLSv1.3")
        }
    }

    @Test("SNI picks the certificate that names the host; an unknown name gets the first")
    func sni() throws {
        let a = try TestCertificates.make("a", names: ["a.test"]), b = try TestCertificates.make("b", names: ["*.b.test"])
        let first = try TLSContext(cert: a.cert, key: a.key), second = try TLSContext(cert: b.cert, key: b.key)
        first.choosing([second])
        #expect(second.matches("x.b.test") && !second.matches("b.test") && first.matches("a.test"))
        for (name, expectB) in [("x.b.test", true), ("a.test", false), ("other.test", false)] {
            let server = TLSConnection(first)
            let client = TLSConnection(TLSContext.client(), server: false, serverName: name)
            Self.connect(client, server)
            // The certificate the client got: its notAfter tells the two apart only by
            // chance, so ask the server which context it switched to.
            #expect(server.usesContext(second) == expectB, "\(name)")
        }
    }

    @Test("sessions resume through tickets across two servers given the same key (two workers)")
    func resumption() throws {
        let (cert, key) = try TestCertificates.make("site", names: ["site.test"])
        let ticketKey = (0..<80).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let workerA = try TLSContext(cert: cert, key: key), workerB = try TLSContext(cert: cert, key: key)
        workerA.useTicketKey(ticketKey)
        workerB.useTicketKey(ticketKey)
        let clientContext = TLSContext.client()
        let first = TLSConnection(clientContext, server: false, serverName: "site.test")
        let onA = TLSConnection(workerA)
        Self.connect(first, onA)
        first.write(Array("one".utf8)[...])
        #expect(Self.pump(first, onA).failed == nil)
        let session = try #require(first.session())
        let second = TLSConnection(clientContext, server: false, serverName: "site.test")
        second.resume(session)
        let onB = TLSConnection(workerB)
        Self.connect(second, onB)
        second.write(Array("two".utf8)[...])
        #expect(Self.pump(second, onB).server == Array("two".utf8))
        #expect(onB.resumed && second.resumed)
        // Another key: no resumption, a full handshake that still works.
        let workerC = try TLSContext(cert: cert, key: key)
        workerC.useTicketKey((0..<80).map { UInt8($0) })
        let third = TLSConnection(clientContext, server: false, serverName: "site.test")
        third.resume(session)
        let onC = TLSConnection(workerC)
        Self.connect(third, onC)
        third.write(Array("three".utf8)[...])
        #expect(Self.pump(third, onC).server == Array("three".utf8))
        #expect(!onC.resumed)
    }

    @Test("ticket key rotation: a ticket of the previous key still opens (and is renewed), one two keys old does not")
    func rotation() throws {
        let (cert, key) = try TestCertificates.make("site", names: ["site.test"])
        let k1 = Array(repeating: UInt8(1), count: 80), k2 = Array(repeating: UInt8(2), count: 80), k3 = Array(repeating: UInt8(3), count: 80)
        let server = try TLSContext(cert: cert, key: key)
        server.useTicketKey(k1)
        let clientContext = TLSContext.client()
        func connect(_ session: TLSSession?) -> (TLSConnection, TLSConnection) {
            let c = TLSConnection(clientContext, server: false, serverName: "site.test")
            if let session { c.resume(session) }
            let s = TLSConnection(server)
            Self.connect(c, s)
            c.write(Array("x".utf8)[...])
            Self.pump(c, s)
            return (c, s)
        }
        let (first, _) = connect(nil)
        let ticket = try #require(first.session())
        server.useTicketKey(k2, previous: k1)
        #expect(connect(ticket).1.resumed)
        server.useTicketKey(k3, previous: k2)
        #expect(!connect(ticket).1.resumed)
    }

    @Test("bad input ends cleanly: a plain HTTP request, garbage, a truncated hello")
    func badInput() throws {
        let (cert, key) = try TestCertificates.make("site", names: ["site.test"])
        let context = try TLSContext(cert: cert, key: key)
        for junk in ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", String(repeating: "\u{16}\u{3}\u{1}\u{0}\u{5}zzzzz", count: 3)] {
            let server = TLSConnection(context)
            server.receive(Array(junk.utf8)[...])
            var buffer = [UInt8](repeating: 0, count: 1024)
            if case .failed = server.read(into: &buffer) {} else { Issue.record("\(junk.debugDescription) was not refused") }
        }
        // Half a ClientHello: it waits for the rest (a stalled client is the header timeout's).
        let client = TLSConnection(TLSContext.client(), server: false, serverName: "site.test")
        _ = client.handshake()
        var hello: [UInt8] = []
        client.takeOutput(into: &hello)
        let server = TLSConnection(context)
        server.receive(hello[..<(hello.count / 2)])
        var buffer = [UInt8](repeating: 0, count: 1024)
        #expect(server.read(into: &buffer) == .wantMore)
    }

    @Test("one connection's failure never ends another on the same thread (OpenSSL's error queue is per thread)")
    func errorsStayWithTheirConnection() throws {
        let (cert, key) = try TestCertificates.make("site", names: ["site.test"])
        let context = try TLSContext(cert: cert, key: key)
        // A healthy connection, between requests.
        let client = TLSConnection(TLSContext.client(), server: false, serverName: "site.test")
        let server = TLSConnection(context)
        Self.connect(client, server)
        // Meanwhile this thread refuses a garbage hello, and closes a client that left
        // mid-handshake (OpenSSL refuses a close_notify then, and says so in the queue).
        var buffer = [UInt8](repeating: 0, count: 1024)
        let junk = TLSConnection(context)
        junk.receive(Array("\u{16}\u{3}\u{1}\u{0}\u{5}zzzzzzzzzz".utf8)[...])
        if case .failed = junk.read(into: &buffer) {} else { Issue.record("garbage was not refused") }
        let half = TLSConnection(context)
        var hello: [UInt8] = []
        let leaving = TLSConnection(TLSContext.client(), server: false, serverName: "site.test")
        _ = leaving.handshake()
        leaving.takeOutput(into: &hello)
        half.receive(hello[...])
        _ = half.read(into: &buffer)
        half.close()
        // The healthy connection's next read, with nothing arrived yet, wants more; then
        // its request arrives whole.
        #expect(server.read(into: &buffer) == .wantMore)
        client.write(Array("GET / HTTP/1.1\r\n\r\n".utf8)[...])
        let r = Self.pump(client, server)
        #expect(r.failed == nil)
        #expect(String(decoding: r.server, as: UTF8.self) == "GET / HTTP/1.1\r\n\r\n")
    }

    @Test("loading: a missing key, a key of another certificate, an expired certificate's date")
    func loading() throws {
        let a = try TestCertificates.make("a", names: ["a.test"]), b = try TestCertificates.make("b", names: ["*.b.test"])
        #expect(throws: TLSContext.LoadError.self) { try TLSContext(cert: a.cert, key: TestCertificates.dir + "/none.key") }
        do {
            _ = try TLSContext(cert: a.cert, key: b.key)
            Issue.record("a key of another certificate was taken")
        } catch {
            #expect(error.description.hasPrefix("the key does not match the certificate"), "\(error)")
        }
        let old = try TestCertificates.make("expired", names: ["old.test"], days: -1)
        let expired = try TLSContext(cert: old.cert, key: old.key)
        #expect(try #require(expired.notAfter) < Int64(Date().timeIntervalSince1970))
        #expect(try #require(try TLSContext(cert: a.cert, key: a.key).notAfter) > Int64(Date().timeIntervalSince1970))
    }
}
