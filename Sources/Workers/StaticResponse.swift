import ContentCoding
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
    /// The body goes gzip-coded and chunked (a route with gzip, a client that takes it).
    var gzip: GzipEncoder? = nil

    /// `offload`: the file an app handed over (X-Accel-Redirect, X-Sendfile) is sent as a
    /// GET's (nginx turns every method but HEAD into GET), with the app's kept fields.
    /// `gzip`: the route compresses (a whole 200 of a listed type is coded on the fly).
    static func make(request: HTTPRequestHead, file: StaticFile, keepAlive: Bool, date: String, offload: Offload? = nil,
                     gzip: GzipChoice? = nil) -> StaticResponse {
        let validators = FileValidators(modified: file.status.modified, size: file.status.size)
        let isHead = request.method == "HEAD"
        let method = offload == nil || isHead ? request.method : "GET"
        switch ConditionalRequest.evaluate(method: method, headers: request.headers, file: validators) {
        case .notModified:
            var out = head(304, date: date, contentType: nil, validators, file)
            HTTPResponseWriter.appendEndOfHead(framing: .noBody, keepAlive: keepAlive, version: request.version, into: &out)
            return StaticResponse(status: 304, head: out, body: nil)
        case .preconditionFailed:
            return StaticResponse(status: 412, head: ResponseHead.error(412, keepAlive: keepAlive, date: date, isHead: isHead), body: nil)
        case .proceed:
            break
        }

        let size = validators.size
        // Range is defined for GET only (HEAD gets the whole file's head).
        var range = ByteRange.Outcome.whole
        if method == "GET", let header = request.headers.first("Range"),
           ConditionalRequest.rangeApplies(ifRange: request.headers.first("If-Range"), file: validators) {
            range = ByteRange.evaluate(header, size: size)
        }
        let status: Int, offset: UInt64, length: UInt64
        switch range {
        case .unsatisfiable:
            let page = ResponseHead.error(416, keepAlive: keepAlive, date: date, extraHeaders: [("Content-Range", "bytes */\(size)")])
            return StaticResponse(status: 416, head: page, body: nil)
        case .partial(let start, let end):
            (status, offset, length) = (206, start, end - start + 1)
        case .whole:
            (status, offset, length) = (200, 0, size)
        }
        let contentType = offload?.contentType ?? MediaTypes.forFile(file.name)
        var f = file
        let coding = file.gzipCoded || length == 0 ? (vary: false, compress: false)
            : gzip?.decide(status: status, contentType: Substring(contentType), contentEncoding: nil,
                           cacheControl: offload?.fields.first { $0.name.equalsLowercaseASCII("cache-control") }.map { Substring($0.value) },
                           contentLength: length) ?? (vary: false, compress: false)
        if coding.vary { f.varies = true }
        var out = head(status, date: date, contentType: contentType, validators, f, coded: coding.compress)
        for f in offload?.fields ?? [] where !f.name.equalsLowercaseASCII("content-type") {
            HTTPResponseWriter.appendCheckedField(f.name, f.value, into: &out)
        }
        if coding.compress, let level = gzip?.policy.level {
            // Chunked, as nginx does: the coded length is known only at the end. Ranges
            // are not offered: they would name bytes of the coding.
            HTTPResponseWriter.appendEndOfHead(framing: .chunked, keepAlive: keepAlive, version: request.version, into: &out)
            return StaticResponse(status: status, head: out, body: isHead ? nil : (offset, length),
                                  gzip: isHead ? nil : GzipEncoder(level: level, expectedLength: length))
        }
        HTTPResponseWriter.appendFieldName("Accept-Ranges", into: &out)
        out.appendUTF8("bytes\r\n")
        if status == 206 {
            HTTPResponseWriter.appendFieldName("Content-Range", into: &out)
            out.appendUTF8("bytes ")
            HTTPResponseWriter.appendDecimal(offset, into: &out)
            out.append(UInt8(ascii: "-"))
            HTTPResponseWriter.appendDecimal(offset + length - 1, into: &out)
            out.append(UInt8(ascii: "/"))
            HTTPResponseWriter.appendDecimal(size, into: &out)
            HTTPResponseWriter.appendCRLF(into: &out)
        }
        HTTPResponseWriter.appendEndOfHead(framing: .contentLength(length), keepAlive: keepAlive, version: request.version, into: &out)
        return StaticResponse(status: status, head: out, body: isHead || length == 0 ? nil : (offset, length))
    }

    /// The status line and the fields every file response has, written straight into
    /// bytes (no HTTPHeaders, no String per field: this runs for every static request).
    /// `coded`: the body is gzip-coded here (Content-Encoding, and a weak ETag).
    static func head(_ status: Int, date: String, contentType: String?, _ validators: FileValidators, _ file: StaticFile,
                     coded: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        HTTPResponseWriter.appendStatusLine(status, date: date, into: &out)
        HTTPResponseWriter.appendFieldName("Server", into: &out)
        out.appendUTF8(WorkerContext.software)
        HTTPResponseWriter.appendCRLF(into: &out)
        if let contentType {
            HTTPResponseWriter.appendFieldName("Content-Type", into: &out)
            out.appendUTF8(contentType)
            HTTPResponseWriter.appendCRLF(into: &out)
        }
        if file.gzipCoded || coded {  // gzip_static's stored .gz, as it is, or coded on the way
            HTTPResponseWriter.appendFieldName("Content-Encoding", into: &out)
            out.appendUTF8("gzip\r\n")
        }
        if file.varies {
            HTTPResponseWriter.appendFieldName("Vary", into: &out)
            out.appendUTF8("Accept-Encoding\r\n")
        }
        HTTPResponseWriter.appendFieldName("Last-Modified", into: &out)
        HTTPDate.append(epochSeconds: validators.modified, into: &out)
        HTTPResponseWriter.appendCRLF(into: &out)
        HTTPResponseWriter.appendFieldName("ETag", into: &out)
        if coded { out.appendUTF8("W/") }
        validators.appendETag(into: &out)
        HTTPResponseWriter.appendCRLF(into: &out)
        return out
    }
}
