import GatewaySystem
import HTTPWire
import Exchanges

/// The response to a GET or HEAD of a static file: 200, 206, 304, 412 or 416, decided
/// from the request's conditional and Range headers (RFC 9110 §13, §14) against the
/// file's validators. The head is made here; the body is the byte range `body` of the
/// file, sent by the worker with sendfile.
struct StaticResponse {
    let status: Int
    let head: [UInt8]
    /// The part of the file to send after the head (nil: none, e.g. HEAD or 304).
    let body: (offset: UInt64, length: UInt64)?

    static func make(request: HTTPRequestHead, file: StaticFile, keepAlive: Bool, date: String) -> StaticResponse {
        let validators = FileValidators(modified: file.status.modified, size: file.status.size)
        let lastModified = HTTPDate.format(epochSeconds: validators.modified)
        let isHead = request.method == "HEAD"
        var headers: [(String, String)] = [("Server", WorkerContext.software), ("Last-Modified", lastModified),
                                           ("ETag", validators.etag)]

        switch ConditionalRequest.evaluate(method: request.method, headers: request.headers, file: validators) {
        case .notModified:
            var out: [UInt8] = []
            HTTPResponseWriter.writeHead(status: 304, headers: HTTPHeaders(headers), framing: .noBody,
                                         keepAlive: keepAlive, version: request.version, date: date, into: &out)
            return StaticResponse(status: 304, head: out, body: nil)
        case .preconditionFailed:
            return StaticResponse(status: 412, head: ResponseHead.error(412, keepAlive: keepAlive, date: date, isHead: isHead), body: nil)
        case .proceed:
            break
        }

        let size = validators.size
        headers.append(("Accept-Ranges", "bytes"))
        // Range is defined for GET only (HEAD gets the whole file's head).
        var range = ByteRange.Outcome.whole
        if request.method == "GET", ConditionalRequest.rangeApplies(ifRange: request.headers.first("If-Range"), file: validators) {
            range = ByteRange.evaluate(request.headers.first("Range"), size: size)
        }
        let status: Int, offset: UInt64, length: UInt64
        switch range {
        case .unsatisfiable:
            let page = ResponseHead.error(416, keepAlive: keepAlive, date: date, extraHeaders: [("Content-Range", "bytes */\(size)")])
            return StaticResponse(status: 416, head: page, body: nil)
        case .partial(let start, let end):
            (status, offset, length) = (206, start, end - start + 1)
            headers.append(("Content-Range", "bytes \(start)-\(end)/\(size)"))
        case .whole:
            (status, offset, length) = (200, 0, size)
        }
        headers.insert(("Content-Type", MediaTypes.forFile(file.name)), at: 1)
        var out: [UInt8] = []
        HTTPResponseWriter.writeHead(status: status, headers: HTTPHeaders(headers), framing: .contentLength(length),
                                     keepAlive: keepAlive, version: request.version, date: date, into: &out)
        return StaticResponse(status: status, head: out, body: isHead || length == 0 ? nil : (offset, length))
    }
}

extension ClientConnection {
    /// Sends `length` bytes of `file` from `offset` with sendfile, waiting at most
    /// `timeout` seconds for each bit of progress. `sent` counts the bytes that went out,
    /// also when it throws (the access log shows what the client got).
    func sendFile(_ file: FileDescriptor, offset: UInt64, length: UInt64, timeout: Double, sent: inout UInt64) throws(ClientError) {
        var position = Int(offset)
        let end = Int(offset + length)
        defer { sent = UInt64(position) - offset }
        while position < end {
            try waitFor(readable: false, deadline: Host.monotonicSeconds() + timeout)
            let n: Int?
            do {
                n = try fd.sendfile(from: file, offset: &position, count: min(end - position, 1 << 20))
            } catch {
                throw error.errno == EPIPE_ || error.errno == ECONNRESET_ ? .closed : .io(error)
            }
            if n == 0 { throw .io(SystemError(errno: 0, "sendfile: the file shrank while it was sent")) }
        }
    }
}
