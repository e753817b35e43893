import CGIProtocol
import ContentCoding
import HTTPWire

/// Client-facing responses: error pages, and the HTTP head made from an app's CGI head.
public enum ResponseHead {
    /// Fields that describe one hop; an app's values never reach the client.
    /// (A hand-over field with a value never gets here: the answer is not sent. An empty
    /// one, a framework clearing it, passes as any field.)
    public static let hopByHop = ["connection", "keep-alive", "transfer-encoding", "te", "trailer",
                           "upgrade", "proxy-connection", "content-length", "status"]

    /// A small text error response. `keepAlive` false adds Connection: close.
    /// A 2xx (OPTIONS *) has an empty body.
    public static func error(_ status: Int, keepAlive: Bool, date: String, extraHeaders: [(String, String)] = [], isHead: Bool = false) -> [UInt8] {
        let body = status < 300 ? [] : Array("\(status) \(HTTPStatus.reasonPhrase(status))\n".utf8)
        let headers = HTTPHeaders([("Server", ServerIdentity.software), ("Content-Type", "text/plain; charset=utf-8")] + extraHeaders)
        var out: [UInt8] = []
        HTTPResponseWriter.writeHead(status: status, headers: headers, framing: .contentLength(UInt64(body.count)),
                                     keepAlive: keepAlive, date: date, into: &out)
        if !isHead { out += body }
        return out
    }

    /// A 200 page made by gatewayd itself (status page, metrics): never cached, since
    /// each request reads the shared table anew.
    public static func page(type: String, body: [UInt8], method: String, keepAlive: Bool, date: String) -> [UInt8] {
        let headers = HTTPHeaders([("Server", ServerIdentity.software), ("Content-Type", type), ("Cache-Control", "no-store")])
        var out: [UInt8] = []
        HTTPResponseWriter.writeHead(status: 200, headers: headers, framing: .contentLength(UInt64(body.count)),
                                     keepAlive: keepAlive, date: date, into: &out)
        if method != "HEAD" { out += body }
        return out
    }

    /// The app's Content-Length, when it sent a valid one.
    public static func contentLength(_ head: CGIResponseHead) -> UInt64? {
        guard let v = head.headers.first(where: { $0.name.equalsLowercaseASCII("content-length") })?.value,
              !v.isEmpty, v.utf8.count <= 19, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(v)
    }

    /// The response head for an app's CGI head, with the framing the worker must use.
    /// With `gzip` (the route compresses): Vary for every response it covers and, for a
    /// client that takes gzip, Content-Encoding, no Content-Length (the body is chunked),
    /// a weak ETag, and the encoder the body goes through.
    public static func forApp(_ cgi: CGIResponseHead, request: HTTPRequestHead, keepAlive: Bool, date: String,
                              gzip: GzipChoice? = nil) -> (bytes: [UInt8], framing: HTTPResponseFraming, gzip: GzipEncoder?) {
        let isHead = request.method == "HEAD"
        let declared = contentLength(cgi)
        func field(_ name: String) -> Substring? {
            cgi.headers.first(where: { $0.name.equalsLowercaseASCII(name) }).map { Substring($0.value) }
        }
        let (vary, compress) = gzip?.decide(status: cgi.status, contentType: field("content-type"), contentEncoding: field("content-encoding"),
                                            cacheControl: field("cache-control"), contentLength: declared) ?? (false, false)
        var framing = HTTPResponseFraming.choose(status: cgi.status, requestMethod: request.method,
                                                 requestVersion: request.version, contentLength: compress ? nil : declared)
        if isHead, framing == .chunked || framing == .untilClose { framing = .noBody }
        // Written field by field from the app's head (what writeHead writes, without
        // an HTTPHeaders copy of every field).
        var out: [UInt8] = []
        out.reserveCapacity(256)
        HTTPResponseWriter.appendStatusLine(cgi.status, reason: cgi.reason, date: date, into: &out)
        HTTPResponseWriter.appendFieldName("Server", into: &out)
        out.appendUTF8(ServerIdentity.software)
        HTTPResponseWriter.appendCRLF(into: &out)
        var varies = false
        for f in cgi.headers where !hopByHop.contains(where: { f.name.equalsLowercaseASCII($0) }) {
            if compress && f.name.equalsLowercaseASCII("etag") {
                HTTPResponseWriter.appendCheckedField(f.name, String(GzipPolicy.weakened(Substring(f.value))), into: &out)
                continue
            }
            if f.name.equalsLowercaseASCII("vary") && f.value.lowercased().contains("accept-encoding") { varies = true }
            HTTPResponseWriter.appendCheckedField(f.name, f.value, into: &out)
        }
        if vary && !varies { HTTPResponseWriter.appendCheckedField("Vary", "Accept-Encoding", into: &out) }
        var encoder: GzipEncoder? = nil
        if compress {
            HTTPResponseWriter.appendCheckedField("Content-Encoding", "gzip", into: &out)
            if !isHead, let level = gzip?.policy.level { encoder = GzipEncoder(level: level, expectedLength: declared) }
        }
        HTTPResponseWriter.appendEndOfHead(framing: framing, keepAlive: keepAlive, version: request.version, into: &out)
        return (out, framing, encoder)
    }
}
