import CGIProtocol
import HTTPWire

/// Turns a CGI program's stdout into the bytes its client gets (RFC 3875 §6): the head
/// parsed and checked (Status, Location, no response splitting, at most
/// `maxHeadSize` bytes), a local redirect noted for the caller to follow, the body framed
/// for the client. An nph- program's output passes through untouched, and the connection
/// closes after it (its framing is the program's business). Holds no fd: the blocking
/// and the epoll CGI runners feed it what they read.
public struct CGIResponseRelay {
    public let request: HTTPRequestHead
    public let nph: Bool
    public var keepAlive: Bool
    private var parser: CGIResponseHeadParser
    private var headBytes: [UInt8] = []
    public private(set) var body: ResponseBody? = nil
    /// `Location: /path` without Status: the server serves that path instead.
    public private(set) var redirect: String? = nil
    /// The program handed the response to gatewayd (X-Accel-Redirect, X-Sendfile).
    public private(set) var offload: Offload? = nil
    public private(set) var status = 0
    private var rawBytes = 0

    /// The route's gzip for this request (nil: no compression, no Vary).
    let gzip: GzipChoice?

    public init(request: HTTPRequestHead, nph: Bool, maxHeadSize: Int, keepAlive: Bool, gzip: GzipChoice? = nil) {
        self.request = request
        self.gzip = gzip
        self.nph = nph
        self.keepAlive = keepAlive && !nph
        parser = CGIResponseHeadParser(maxHeadSize: maxHeadSize)
    }

    /// Whether anything has gone to the client (after that, a failure can only close).
    public var headSent: Bool { body != nil || rawBytes > 0 }

    /// Feeds bytes read from the program's stdout; appends what the client should get.
    public mutating func receive(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8], date: @autoclosure () -> String,
                          draining: Bool) throws(CGIResponseError) {
        if nph { return passRaw(bytes, into: &out) }
        if redirect != nil || offload != nil { return }  // what follows a local redirect's (or an offload's) head is dropped
        if body != nil { return body!.append(bytes, into: &out) }
        headBytes += bytes
        let (consumed, parsed) = try parser.parse(headBytes[...])
        guard let head = parsed else { return }
        status = head.status
        let rest = headBytes[consumed...]
        defer { headBytes = [] }
        if head.handsOver, let o = Offload.from(head) {
            offload = o
            return
        }
        if case .localRedirect(let location) = head.kind {
            redirect = location
            return
        }
        keepAlive = keepAlive && !draining
        let (bytes, framing, coder) = ResponseHead.forApp(head, request: request, keepAlive: keepAlive, date: date(), gzip: gzip)
        if framing == .untilClose { keepAlive = false }
        var b = ResponseBody(framing: framing, isHead: request.method == "HEAD", gzip: coder)
        out += bytes
        if !rest.isEmpty { b.append(rest, into: &out) }
        body = b
    }

    /// The program's stdout ended. Throws when it ended before a whole head; returns the
    /// counts when the body did not match the program's Content-Length (close then).
    public mutating func finish(into out: inout [UInt8]) throws(CGIResponseError) -> (sent: UInt64, declared: UInt64)? {
        if nph {
            guard rawBytes > 0 else { throw CGIResponseError("no output") }
            return nil
        }
        if redirect != nil || offload != nil { return nil }
        guard let b = body else {
            throw CGIResponseError(headBytes.isEmpty ? "no output" : "output ended inside the head")
        }
        return b.finish(into: &out)
    }

    /// nph-: the status is read from "HTTP/1.x NNN" for the access log only.
    private mutating func passRaw(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        if rawBytes < 12 {
            headBytes += bytes.prefix(12 - rawBytes)
            if headBytes.count >= 12, headBytes.starts(with: Array("HTTP/1.".utf8)) {
                let digits = headBytes[9..<12]
                if digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                    status = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
                }
            }
        }
        rawBytes += bytes.count
        out += bytes
    }
}
