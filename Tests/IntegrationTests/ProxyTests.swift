import Foundation
import GatewaySystem
import Testing
import Glibc

/// Behind a proxy: forwarded headers believed only from forwarded_allow_ips, and the
/// PROXY protocol on a listener that enables it, under every worker class. The sample
/// CGI program echo.py shows what the app saw.
@Suite("Behind a proxy", .serialized)
struct ProxyTests {
    static let routes = """
        [[route]]
        path = "/cgi-bin"
        cgi = "\(repositoryRoot)/apps/cgi"
        [cgi]
        interpreters = { ".py" = "python3" }
        """

    static func env(_ r: HTTPResponse) throws -> [String: String] {
        let o = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        return o?["env"] as? [String: String] ?? [:]
    }

    static func env(_ raw: String) throws -> [String: String] {
        try env(parseResponse(Array(raw.utf8)))
    }

    @Test("forwarded_allow_ips: trusted peers set REMOTE_ADDR and HTTPS; others change nothing", arguments: workerClasses)
    func forwarded(workerClass: String) throws {
        let trusting = try GatewaydServer(config: Self.routes, server: "forwarded_allow_ips = [\"127.0.0.1\", \"10.0.0.0/8\"]",
                                          workers: 1, workerClass: workerClass)
        defer { trusting.stop() }
        let xff = try Self.env(http(trusting.port, "GET", "/cgi-bin/echo.py",
                                    headers: [("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.1.2.3"), ("X-Forwarded-Proto", "https")]))
        #expect(xff["REMOTE_ADDR"] == "203.0.113.7", "the nearest untrusted hop, not the spoofable first one")
        #expect(xff["HTTPS"] == "on" && xff["REQUEST_SCHEME"] == "https")
        let std = try Self.env(http(trusting.port, "GET", "/cgi-bin/echo.py",
                                    headers: [("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]))
        // Forwarded is read only with forwarded_header = "forwarded" (SecurityTests): by
        // default it is the client's own header, passed through by the proxy.
        #expect(std["REMOTE_ADDR"] == "127.0.0.1" && std["HTTPS"] == nil)
        let plain = try Self.env(http(trusting.port, "GET", "/cgi-bin/echo.py"))
        #expect(plain["REMOTE_ADDR"] == "127.0.0.1" && plain["HTTPS"] == nil && plain["REQUEST_SCHEME"] == "http")
        // The access log names the client too.
        let log = (try? String(contentsOfFile: trusting.accessLogPath, encoding: .utf8)) ?? ""
        #expect(log.contains("203.0.113.7 - - ["), "\(log.suffix(300))")

        let wary = try GatewaydServer(config: Self.routes, workers: 1, workerClass: workerClass)
        defer { wary.stop() }
        let spoofed = try Self.env(http(wary.port, "GET", "/cgi-bin/echo.py",
                                        headers: [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=1.2.3.4;proto=https")]))
        #expect(spoofed["REMOTE_ADDR"] == "127.0.0.1" && spoofed["HTTPS"] == nil, "nobody is trusted by default")
        #expect(spoofed["HTTP_X_FORWARDED_FOR"] == "203.0.113.7", "the header still reaches the app")
    }

    @Test("PROXY protocol v1 and v2 on a listener with proxy_protocol", arguments: workerClasses)
    func proxyProtocol(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.routes, server: "proxy_protocol = true\nkeepalive = 5", workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let request = "GET /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let v1 = try Self.env(rawExchange(server.port, "PROXY TCP4 203.0.113.9 127.0.0.1 40001 80\r\n" + request))
        #expect(v1["REMOTE_ADDR"] == "203.0.113.9" && v1["REMOTE_PORT"] == "40001")

        // v2, sent in two pieces, then two requests on the connection: both from the source.
        let fd = try Socket.connectTCP(host: "127.0.0.1", port: server.port)
        defer { try? fd.close() }
        let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        let v2 = sig + [0x21, 0x11, 0x00, 0x0C, 198, 51, 100, 20, 127, 0, 0, 1, 0x9C, 0x41, 0x00, 0x50]
        try fd.writeAll(Array(v2.prefix(7)))
        usleep(100_000)
        try fd.writeAll(Array(v2.dropFirst(7)) + Array("GET /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Array(request.utf8))
        let both = String(decoding: try readAll(fd, timeout: 10), as: UTF8.self)
        #expect(both.components(separatedBy: "\"REMOTE_ADDR\": \"198.51.100.20\"").count == 3, "\(both.prefix(300))")

        // curl's own PROXY v1 header: the real peer.
        let viaCurl = try runProgram(curl, ["-s", "--haproxy-protocol", "http://127.0.0.1:\(server.port)/cgi-bin/echo.py"])
        #expect(viaCurl.stdout.contains("\"REMOTE_ADDR\": \"127.0.0.1\""))
        // No header: 400 and closed.
        #expect(try rawExchange(server.port, request).hasPrefix("HTTP/1.1 400"))
        // LOCAL (a health check): the socket's peer.
        let local = try Self.env(rawExchange(server.port, String(decoding: sig + [0x20, 0x00, 0x00, 0x00], as: UTF8.self) + request))
        #expect(local["REMOTE_ADDR"] == "127.0.0.1")
    }
}
