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

    /// `offload`: the file an app handed over (X-Accel-Redirect, X-Sendfile) is sent as a
    /// GET's (nginx turns every method but HEAD into GET), with the app's kept fields.
    static func make(request: HTTPRequestHead, file: StaticFile, keepAlive: Bool, date: String, offload: Offload? = nil) -> StaticResponse {
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
        var out = head(status, date: date, contentType: offload?.contentType ?? MediaTypes.forFile(file.name), validators, file)
        for f in offload?.fields ?? [] where !f.name.equalsLowercaseASCII("content-type") {
            HTTPResponseWriter.appendCheckedField(f.name, f.value, into: &out)
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
    static func head(_ status: Int, date: String, contentType: String?, _ validators: FileValidators, _ file: StaticFile) -> [UInt8] {
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
        if file.gzipCoded {  // gzip_static: the stored .gz, as it is
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
        validators.appendETag(into: &out)
        HTTPResponseWriter.appendCRLF(into: &out)
        return out
    }
}
