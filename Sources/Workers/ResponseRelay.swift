import CGIProtocol
import HTTPWire
import Logging
import Upstream

/// Turns what a FastCGI app sends into the bytes its client gets: the HTTP head made
/// from the CGI head, the body framed as the head says (never more than the app's
/// Content-Length), the last chunk, and STDERR lines into the error log. Holds no
/// socket: the blocking exchange and the epoll worker both feed it what they read.
struct ResponseRelay {
    let request: HTTPRequestHead
    var reader: FastCGIResponseReader
    /// Whether the client connection may stay open; cleared by the app's framing.
    var keepAlive: Bool
    private(set) var framing: HTTPResponseFraming? = nil
    /// The app's local redirect (Location: /path on a GET or HEAD), followed instead of sent.
    private(set) var redirect: String? = nil
    private(set) var status = 0
    private(set) var ended = false
    private var declared: UInt64? = nil
    private var sent: UInt64 = 0

    init(request: HTTPRequestHead, maxHeadSize: Int, keepAlive: Bool) {
        self.request = request
        self.keepAlive = keepAlive
        reader = FastCGIResponseReader(requestID: 1, maxHeadSize: maxHeadSize)
    }

    /// Whether the head has gone to the client (after that, a failure can only close).
    var headSent: Bool { framing != nil }
    var bytesReceived: Int { reader.bytesReceived }
    /// The app connection may carry another request.
    var reusable: Bool { reader.reusable }

    /// Feeds bytes read from the app; appends what the client should get to `out`.
    /// Throws the app's protocol errors (`.overloaded` before any output is a busy slot).
    mutating func receive(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8], ctx: WorkerContext,
                          meta: @autoclosure () -> Logger.Metadata) throws(UpstreamError) {
        let isHead = request.method == "HEAD"
        for output in try reader.receive(bytes) {
            switch output {
            case .head(let cgi):
                status = cgi.status
                if case .localRedirect(let location) = cgi.kind, request.method == "GET" || request.method == "HEAD" {
                    redirect = location
                    continue
                }
                keepAlive = keepAlive && !ctx.draining
                let (head, f) = ResponseHead.forApp(cgi, request: request, keepAlive: keepAlive, date: ctx.httpDate())
                framing = f
                if f == .untilClose { keepAlive = false }
                if case .contentLength(let c) = f { declared = c }
                out += head
            case .body(let body):
                guard redirect == nil, !isHead, let f = framing, f != .noBody else { continue }
                if let d = declared {
                    let room = d > sent ? Int(min(d - sent, UInt64(body.count))) : 0
                    out += body.prefix(room)
                } else if f == .chunked {
                    body.withUnsafeBytes { HTTPChunkedEncoder.appendChunk($0, into: &out) }
                } else {
                    out += body
                }
                sent += UInt64(body.count)
            case .stderr(let text):
                for line in String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline) where !line.isEmpty {
                    ctx.logger.warning("app stderr: \(line)", metadata: meta())
                }
            case .end(let appStatus):
                ended = true
                if redirect != nil { return }
                if appStatus != 0 { ctx.logger.debug("app exit status \(appStatus)", metadata: meta()) }
                if framing == .chunked && !isHead { HTTPChunkedEncoder.appendEnd(into: &out) }
                if let d = declared, !isHead, sent != d {
                    ctx.logger.error("app sent \(sent) body bytes but Content-Length \(d)", metadata: meta())
                    keepAlive = false
                }
            }
        }
    }
}
