import Testing
@testable import CGIProtocol
import HTTPWire
@testable import Exchanges

/// The client head made from an app's CGI head: what `HTTPResponseWriter.writeHead`
/// writes for the same fields, with the app's hostile fields dropped.
@Suite("Response head from an app's head")
struct ResponseHeadTests {
    static func request(_ method: String, minor: Int) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: "/x", version: HTTPVersion(major: 1, minor: minor), headers: HTTPHeaders(),
                        keepAlive: true, expectContinue: false, framing: .none, host: "h")
    }

    @Test("fields in order; framing, Date, hop-by-hop and malformed fields are the server's or dropped")
    func sameAsWriteHead() {
        let fields = [CGIHeaderField("Content-Type", "text/html"), CGIHeaderField("Set-Cookie", "a=1"),
                      CGIHeaderField("Content-Length", "5"), CGIHeaderField("Date", "then"), CGIHeaderField("Connection", "keep-alive"),
                      CGIHeaderField("X-Split", "a\r\nInjected: 1"), CGIHeaderField("Bad Name", "v"), CGIHeaderField("Upgrade", "h2c"),
                      CGIHeaderField("X-Ok", "ü")]
        for (status, reason) in [(200, nil), (404, "Gone\r\nX: y"), (204, nil), (304, nil)] as [(Int, String?)] {
            let cgi = CGIResponseHead(status: status, reason: reason, headers: fields, kind: .document)
            for method in ["GET", "HEAD"] {
                for minor in [0, 1] {
                    for keep in [true, false] {
                        let request = Self.request(method, minor: minor)
                        let (bytes, framing, _) = ResponseHead.forApp(cgi, request: request, keepAlive: keep, date: "D")
                        var headers = HTTPHeaders()
                        headers.append(name: "Server", value: ServerIdentity.software)
                        for f in fields where !ResponseHead.hopByHop.contains(where: { f.name.equalsLowercaseASCII($0) }) {
                            headers.append(name: f.name, value: f.value)
                        }
                        var expected: [UInt8] = []
                        HTTPResponseWriter.writeHead(status: status, reason: reason, headers: headers, framing: framing,
                                                     keepAlive: keep, version: request.version, date: "D", into: &expected)
                        #expect(bytes == expected, "\(String(decoding: bytes, as: UTF8.self))")
                        let text = String(decoding: bytes, as: UTF8.self)
                        #expect(!text.contains("Injected") && !text.contains("Bad Name") && !text.contains("then") && !text.contains("h2c"))
                    }
                }
            }
        }
    }
}
