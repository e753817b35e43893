import Foundation
import Testing
import HTTPWire
import FastCGIWire
import CGIProtocol
import GatewaySystem

/// The project's sans-IO pipeline (HTTP parser -> CGI meta-variables -> FastCGI encoder,
/// FastCGI decoder -> CGI head parser) against real FastCGI implementations: libfcgi (C),
/// flup (Python) and php-cgi. No mocks: each test starts the app with its socket on fd 0.
struct SampleApp: Sendable, CustomTestStringConvertible {
    let name: String
    let command: [String]
    let scriptName: String
    let scriptFilename: String?
    let documentRoot: String?
    let supportsKeepConn: Bool
    var testDescription: String { name }

    static let all: [SampleApp] = [
        SampleApp(name: "c", command: [repositoryRoot + "/apps/bin/c-app"], scriptName: "/c",
                  scriptFilename: nil, documentRoot: nil, supportsKeepConn: true),
        SampleApp(name: "python", command: ["python3", repositoryRoot + "/apps/python/app.py"], scriptName: "/py",
                  scriptFilename: nil, documentRoot: nil, supportsKeepConn: true),
        SampleApp(name: "php", command: ["php-cgi"], scriptName: "/app.php",
                  scriptFilename: repositoryRoot + "/apps/php/app.php", documentRoot: repositoryRoot + "/apps/php",
                  supportsKeepConn: true),
    ]

    func start() throws -> FastCGIApp { try FastCGIApp(name: name, command: command) }

    /// Parses `rawHead` as a client request and builds the FastCGI params for it.
    func params(_ rawHead: String, pathInfo: String, contentLength: UInt64?) throws -> [FastCGIPair] {
        var parser = HTTPRequestParser()
        guard case .head(let head)? = try parser.parse(Array(rawHead.utf8)[...]).event else { throw TestFailure("no head") }
        let ctx = CGIRequestContext(scriptName: scriptName, pathInfo: pathInfo, documentRoot: documentRoot,
                                    scriptFilename: scriptFilename, contentLength: contentLength,
                                    remoteAddress: "127.0.0.1", remotePort: 40000, serverName: "localhost", serverPort: 8080)
        return CGIEnvironment.build(head: head, context: ctx).map { FastCGIPair($0.name, $0.value) }
    }
}

/// A reply split into the CGI head and the body bytes after it.
func splitResponse(_ reply: FastCGIReply) throws -> (CGIResponseHead, [UInt8]) {
    var p = CGIResponseHeadParser()
    let (consumed, head) = try p.parse(reply.stdout[...])
    guard let head else { throw TestFailure("incomplete CGI head: \(String(decoding: reply.stdout.prefix(200), as: UTF8.self))") }
    return (head, Array(reply.stdout[consumed...]))
}

func jsonObject(_ bytes: [UInt8]) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { throw TestFailure("not a JSON object") }
    return o
}

extension SampleApp {
    /// Starts the app, sends one request built from `rawHead` (and `body`), stops the app.
    func exchange(_ rawHead: String, pathInfo: String, body: [UInt8] = []) throws -> (CGIResponseHead, [UInt8], FastCGIReply) {
        let proc = try start()
        defer { proc.stop() }
        let c = try FastCGIConnection(path: proc.socketPath)
        let length: UInt64? = rawHead.contains("Content-Length") ? UInt64(body.count) : nil
        let reply = try c.request(params: try params(rawHead, pathInfo: pathInfo, contentLength: length), body: body)
        let (head, out) = try splitResponse(reply)
        return (head, out, reply)
    }
}

@Suite("FastCGI against real apps")
struct FastCGIPeerTests {
    @Test(arguments: SampleApp.all)
    func hello(_ app: SampleApp) throws {
        let (head, body, reply) = try app.exchange("GET \(app.scriptName)/hello HTTP/1.1\r\nHost: localhost\r\n\r\n", pathInfo: "/hello")
        #expect(reply.protocolStatus == .requestComplete)
        #expect(head.status == 200)
        #expect(head.contentType?.hasPrefix("text/plain") == true)
        #expect(String(decoding: body, as: UTF8.self).hasPrefix("Hello from"))
    }

    @Test(arguments: SampleApp.all)
    func appSeesTheEnvironmentItShould(_ app: SampleApp) throws {
        let raw = "POST \(app.scriptName)/env?x=1&y=%20 HTTP/1.1\r\nHost: localhost:8080\r\nX-Test: yes\r\nProxy: http://evil:3128\r\n"
            + "X_Test: smuggled\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        let (head, body, _) = try app.exchange(raw, pathInfo: "/env", body: Array("hello".utf8))
        #expect(head.status == 200)
        let env = try jsonObject(body)
        #expect(env["REQUEST_METHOD"] as? String == "POST")
        #expect(env["SCRIPT_NAME"] as? String == app.scriptName)
        #expect(env["PATH_INFO"] as? String == "/env")
        #expect(env["QUERY_STRING"] as? String == "x=1&y=%20")
        #expect(env["CONTENT_LENGTH"] as? String == "5")
        #expect(env["CONTENT_TYPE"] as? String == "text/plain")
        #expect(env["HTTP_X_TEST"] as? String == "yes")
        #expect(env["HTTP_HOST"] as? String == "localhost:8080")
        #expect(env["SERVER_PROTOCOL"] as? String == "HTTP/1.1")
        #expect(env["REMOTE_ADDR"] as? String == "127.0.0.1")
        #expect(env["HTTP_PROXY"] == nil, "httpoxy: no HTTP_PROXY may reach the app")
        #expect(!(env.values.contains { ($0 as? String) == "smuggled" }), "underscore header must be dropped")
    }

    @Test("bodies arrive byte-identical", arguments: SampleApp.all, [0, 1, 65535, 65536, 200_000, 10 << 20])
    func echoBody(_ app: SampleApp, size: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let body = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let raw = "PUT \(app.scriptName)/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(size)\r\n\r\n"
        let (head, out, _) = try app.exchange(raw, pathInfo: "/echo", body: body)
        #expect(head.status == 200)
        let result = try jsonObject(out)
        #expect(result["length"] as? Int == size)
        #expect(result["sha256"] as? String == (try sha256Hex(body)))
    }

    @Test(arguments: SampleApp.all)
    func statusAndHeadersFromTheApp(_ app: SampleApp) throws {
        let raw = "GET \(app.scriptName)/status?code=418&name=X-Custom&value=brewed HTTP/1.1\r\nHost: localhost\r\n\r\n"
        let (head, body, _) = try app.exchange(raw, pathInfo: "/status")
        #expect(head.status == 418)
        #expect(head.headers.contains(CGIHeaderField("X-Custom", "brewed")))
        #expect(String(decoding: body, as: UTF8.self) == "status 418\n")
    }

    @Test(arguments: SampleApp.all)
    func streamedResponseIsExact(_ app: SampleApp) throws {
        let n = 300_001
        let (head, body, _) = try app.exchange("GET \(app.scriptName)/stream?bytes=\(n) HTTP/1.1\r\nHost: localhost\r\n\r\n", pathInfo: "/stream")
        #expect(head.status == 200)
        #expect(body.count == n)
        #expect(body == (0..<n).map { UInt8(97 + $0 % 26) })
    }

    @Test(arguments: SampleApp.all)
    func stderrIsItsOwnStream(_ app: SampleApp) throws {
        let (head, body, reply) = try app.exchange("GET \(app.scriptName)/stderr HTTP/1.1\r\nHost: h\r\n\r\n", pathInfo: "/stderr")
        #expect(head.status == 200)
        #expect(String(decoding: body, as: UTF8.self) == "wrote to stderr\n")
        #expect(String(decoding: reply.stderr, as: UTF8.self).contains("a line on stderr from the"))
    }

    @Test("FCGI_KEEP_CONN: several requests on one connection", arguments: SampleApp.all.filter(\.supportsKeepConn))
    func keptConnection(_ app: SampleApp) throws {
        let proc = try app.start()
        defer { proc.stop() }
        let c = try FastCGIConnection(path: proc.socketPath)
        for i in 1...5 {
            let raw = "GET \(app.scriptName)/status?code=\(200 + i) HTTP/1.1\r\nHost: h\r\n\r\n"
            let reply = try c.request(id: UInt16(i), params: try app.params(raw, pathInfo: "/status", contentLength: nil), keepConnection: true)
            let (head, _) = try splitResponse(reply)
            #expect(head.status == 200 + i)
        }
    }

    /// A management round trip with a real peer: flup answers GET_VALUES on a fresh
    /// connection (libfcgi reads management records only inside a request). flup 1.0.3 on
    /// Python 3 compares the bytes names with str keys and so returns no pairs; what
    /// matters here is that our encoder's query is accepted and the reply decodes.
    @Test func flupAnswersGetValues() throws {
        let proc = try SampleApp.all[1].start()
        defer { proc.stop() }
        let c = try FastCGIConnection(path: proc.socketPath)
        let values = try c.getValues(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        #expect(values.allSatisfy { ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"].contains($0.nameString) })
        // The connection is still usable for a request afterwards.
        let reply = try c.request(params: try SampleApp.all[1].params("GET /py/hello HTTP/1.1\r\nHost: h\r\n\r\n", pathInfo: "/hello", contentLength: nil))
        #expect(try splitResponse(reply).0.status == 200)
    }
}
