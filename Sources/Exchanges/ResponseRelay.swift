import CGIProtocol
import ContentCoding
import HTTPWire

/// Turns what a FastCGI app sends into the bytes its client gets: the HTTP head made
/// from the CGI head, the body framed as the head says (never more than the app's
/// Content-Length), the last chunk, and STDERR lines into the error log. Holds no
/// socket: the blocking exchange and the epoll worker both feed it what they read.
public struct ResponseRelay {
    public let request: HTTPRequestHead
    var reader: FastCGIResponseReader
    /// Whether the client connection may stay open; cleared by the app's framing.
    public var keepAlive: Bool
    public private(set) var body: ResponseBody? = nil
    public var framing: HTTPResponseFraming? { body?.framing }
    /// The app's local redirect (Location: /path on a GET or HEAD), followed instead of sent.
    public private(set) var redirect: String? = nil
    /// The app handed the response to gatewayd (X-Accel-Redirect, X-Sendfile).
    public private(set) var offload: Offload? = nil
    public private(set) var status = 0
    public private(set) var ended = false
    /// STDERR records, logged with a cap per request.
    private var stderrLines = StderrLines(label: "app")

    /// The route's gzip for this request (nil: no compression, no Vary).
    let gzip: GzipChoice?

    public init(request: HTTPRequestHead, requestID: UInt16, maxHeadSize: Int, keepAlive: Bool, gzip: GzipChoice? = nil) {
        self.request = request
        self.gzip = gzip
        self.keepAlive = keepAlive
        reader = FastCGIResponseReader(requestID: requestID, maxHeadSize: maxHeadSize)
    }

    /// Whether the head has gone to the client (after that, a failure can only close).
    public var headSent: Bool { framing != nil }
    public var bytesReceived: Int { reader.bytesReceived }
    /// The app connection may carry another request.
    public var reusable: Bool { reader.reusable }

    /// What it means that the app closed (or reset) the connection now: before a byte of
    /// the answer, a connection to retry (a kept one the app had closed); after, a
    /// broken response. Both drivers ask here, so they cannot disagree.
    public var failureOnClose: UpstreamFailure { bytesReceived == 0 ? .closedBeforeAnswer : .broken(.closedEarly) }

    /// What an error thrown by `receive` means: FCGI_OVERLOADED before the head is a
    /// busy slot (try another); anything else breaks the response.
    public func failure(for error: UpstreamError) -> UpstreamFailure {
        if case .overloaded = error, !headSent { return .overloaded }
        return .broken(error)
    }

    /// Feeds bytes read from the app; appends what the client should get to `out`.
    /// Throws the app's protocol errors (`.overloaded` before any output is a busy slot).
    /// `mayKeepAlive`: the worker is not draining; `date`: the Date header's value.
    public mutating func receive(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8], mayKeepAlive: Bool,
                                 date: @autoclosure () -> String, notes: inout [ExchangeNote]) throws(UpstreamError) {
        let isHead = request.method == "HEAD"
        let strayBefore = reader.strayBytes
        defer {
            if reader.strayBytes && !strayBefore {
                notes.append(ExchangeNote(.warning, "the app sent bytes after its END_REQUEST; its connection will not be reused"))
            }
        }
        for output in try reader.receive(bytes) {
            switch output {
            case .head(let cgi):
                status = cgi.status
                if cgi.handsOver, let o = Offload.from(cgi) {
                    offload = o
                    continue
                }
                if case .localRedirect(let location) = cgi.kind, request.method == "GET" || request.method == "HEAD" {
                    redirect = location
                    continue
                }
                keepAlive = keepAlive && mayKeepAlive
                let (head, f, coder) = ResponseHead.forApp(cgi, request: request, keepAlive: keepAlive, date: date(), gzip: gzip)
                body = ResponseBody(framing: f, isHead: isHead, gzip: coder)
                if f == .untilClose { keepAlive = false }
                out += head
            case .body(let bytes):
                guard redirect == nil && offload == nil else { continue }
                body?.append(bytes, into: &out)
            case .stderr(let text):
                stderrLines.append(text, notes: &notes)
            case .end(let appStatus):
                ended = true
                stderrLines.finish(notes: &notes)
                if redirect != nil || offload != nil { return }
                if appStatus != 0 { notes.append(ExchangeNote(.debug, "app exit status \(appStatus)")) }
                if let short = body?.finish(into: &out) {
                    notes.append(ExchangeNote(.error, "app sent \(short.sent) body bytes but Content-Length \(short.declared)"))
                    keepAlive = false
                }
            }
        }
    }
}

/// A response body framed for the client as its head said: cut at the app's
/// Content-Length, chunked, or raw until close; nothing for HEAD or a bodiless status.
/// With `gzip`, each piece is compressed (and flushed, so the client keeps pace with
/// the app) before it is framed. (Not Sendable: the encoder is one response's, on the
/// thread that serves it.)
public struct ResponseBody {
    public let framing: HTTPResponseFraming
    public let isHead: Bool
    public private(set) var sent: UInt64 = 0
    let gzip: GzipEncoder?

    public init(framing: HTTPResponseFraming, isHead: Bool, gzip: GzipEncoder? = nil) {
        self.framing = framing
        self.isHead = isHead
        self.gzip = isHead ? nil : gzip
    }

    public mutating func append(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        guard !isHead else { return }
        if let gzip {
            guard !bytes.isEmpty else { return }
            var coded: [UInt8] = []
            gzip.compress(bytes, flush: true, into: &coded)
            sent += UInt64(bytes.count)
            return frame(coded[...], into: &out)
        }
        frame(bytes, into: &out)
        sent += UInt64(bytes.count)
    }

    private func frame(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        switch framing {
        case .noBody:
            return
        case .contentLength(let d):
            let room = d > sent ? Int(min(d - sent, UInt64(bytes.count))) : 0
            out += bytes.prefix(room)
        case .chunked:
            bytes.withUnsafeBytes { HTTPChunkedEncoder.appendChunk($0, into: &out) }
        case .untilClose:
            out += bytes
        }
    }

    /// Ends the body (the gzip trailer, the last chunk). Returns the counts when the app
    /// sent fewer or more bytes than its Content-Length: the connection must then close.
    public func finish(into out: inout [UInt8]) -> (sent: UInt64, declared: UInt64)? {
        guard !isHead else { return nil }
        if let gzip {
            var coded: [UInt8] = []
            gzip.finish(into: &coded)
            frame(coded[...], into: &out)
        }
        if framing == .chunked { HTTPChunkedEncoder.appendEnd(into: &out) }
        if case .contentLength(let d) = framing, sent != d { return (sent, d) }
        return nil
    }
}
