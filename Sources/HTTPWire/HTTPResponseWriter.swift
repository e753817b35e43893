/// How a response body is delimited on the wire.
public enum HTTPResponseFraming: Sendable, Equatable {
    /// No body may follow (HEAD, 1xx, 204, 304).
    case noBody
    case contentLength(UInt64)
    case chunked
    /// Body runs until the connection closes (HTTP/1.0 client, unknown length).
    case untilClose

    /// Picks the framing for a response whose length may be unknown (RFC 9112 §6.3).
    public static func choose(status: Int, requestMethod: String, requestVersion: HTTPVersion,
                              contentLength: UInt64?) -> HTTPResponseFraming {
        if status < 200 || status == 204 || status == 304 { return .noBody }
        if let n = contentLength { return .contentLength(n) }
        return requestVersion.minor >= 1 ? .chunked : .untilClose
    }
}

/// Serializes response heads. It owns the framing and connection fields: any
/// Content-Length, Transfer-Encoding, Connection, Keep-Alive or Date passed in `headers`
/// is dropped and written from `framing`/`keepAlive`, and a field whose name is not a
/// token or whose value holds CR, LF or NUL is dropped (no response splitting).
public enum HTTPResponseWriter {
    public static func writeHead(status: Int, reason: String? = nil, headers: HTTPHeaders,
                                 framing: HTTPResponseFraming, keepAlive: Bool,
                                 version: HTTPVersion = .http1_1, date: String? = nil,
                                 into out: inout [UInt8]) {
        out.appendUTF8("HTTP/1.1 ")
        appendStatusCode(status, into: &out)
        out.append(ASCII.sp)
        out.append(contentsOf: (reason ?? HTTPStatus.reasonPhrase(status)).utf8.filter { isFieldValueChar($0) })
        out.append(contentsOf: crlf)
        if let date { appendField("Date", date, into: &out) }
        for i in 0..<headers.count {
            headers.withField(at: i) { name, value in
                guard isWritable(name, value), !isFramingField(name) else { return }
                out.append(contentsOf: name)
                out.appendUTF8(": ")
                out.append(contentsOf: value)
                out.append(contentsOf: crlf)
            }
        }
        appendEndOfHead(framing: framing, keepAlive: keepAlive, version: version, into: &out)
    }

    /// Heads the server writes itself (a static file's), field by field without
    /// HTTPHeaders or Strings: the names and values are its own, so they skip the checks
    /// `writeHead` makes. Open with `appendStatusLine`, add fields, close with
    /// `appendEndOfHead`; the result is what `writeHead` writes for the same fields.
    public static func appendStatusLine(_ status: Int, reason: String? = nil, date: String, into out: inout [UInt8]) {
        out.appendUTF8("HTTP/1.1 ")
        appendStatusCode(status, into: &out)
        out.append(ASCII.sp)
        if let reason {
            for b in reason.utf8 where isFieldValueChar(b) { out.append(b) }
        } else {
            out.appendUTF8(HTTPStatus.reasonPhrase(status))
        }
        out.append(contentsOf: crlf)
        appendField("Date", date, into: &out)
    }

    /// "Name: " (the value and CRLF are the caller's, then `appendCRLF`).
    public static func appendFieldName(_ name: StaticString, into out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(ASCII.colon)
        out.append(ASCII.sp)
    }

    public static func appendCRLF(into out: inout [UInt8]) { out.append(contentsOf: crlf) }

    /// A field from someone else (an app's head), with `writeHead`'s checks: dropped
    /// when its name is not a token, its value holds CR, LF or NUL, or it is a framing
    /// or Date field (those are the server's).
    public static func appendCheckedField(_ name: String, _ value: String, into out: inout [UInt8]) {
        var name = name, value = value  // withUTF8 is mutating; native Strings are not copied
        name.withUTF8 { n in
            value.withUTF8 { v in
                let nb = UnsafeRawBufferPointer(n), vb = UnsafeRawBufferPointer(v)
                guard isWritable(nb, vb), !isFramingField(nb) else { return }
                out.append(contentsOf: nb)
                out.append(ASCII.colon)
                out.append(ASCII.sp)
                out.append(contentsOf: vb)
                out.append(contentsOf: crlf)
            }
        }
    }

    /// Content-Length or Transfer-Encoding, Connection when needed, and the blank line,
    /// as `writeHead` ends a head.
    public static func appendEndOfHead(framing: HTTPResponseFraming, keepAlive: Bool, version: HTTPVersion, into out: inout [UInt8]) {
        switch framing {
        case .noBody, .untilClose: break
        case .contentLength(let n):
            appendFieldName("Content-Length", into: &out)
            appendDecimal(n, into: &out)
            out.append(contentsOf: crlf)
        case .chunked: appendField("Transfer-Encoding", "chunked", into: &out)
        }
        let persistent = keepAlive && framing != .untilClose
        if !persistent {
            appendField("Connection", "close", into: &out)
        } else if version.minor == 0 {
            appendField("Connection", "keep-alive", into: &out)
        }
        out.append(contentsOf: crlf)
    }

    public static func appendDecimal(_ n: UInt64, into out: inout [UInt8]) {
        var scale: UInt64 = 1
        while scale <= n / 10 { scale *= 10 }
        while scale > 0 {
            out.append(UInt8(ascii: "0") + UInt8(n / scale % 10))
            scale /= 10
        }
    }

    public static func appendHex(_ n: UInt64, into out: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        var shift = max(0, (UInt64.bitWidth - n.leadingZeroBitCount + 3) / 4 * 4 - 4)
        while shift >= 0 {
            out.append(digits.utf8Start[Int((n >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }

    /// An interim `100 Continue`, sent before reading a body the client holds back.
    public static let continueHead: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    static let crlf: [UInt8] = [ASCII.cr, ASCII.lf]

    static func appendField(_ name: String, _ value: String, into out: inout [UInt8]) {
        out.appendUTF8(name)
        out.appendUTF8(": ")
        out.appendUTF8(value)
        out.append(contentsOf: crlf)
    }

    static func appendStatusCode(_ status: Int, into out: inout [UInt8]) {
        let s = min(max(status, 100), 999)
        out.append(UInt8(ascii: "0") + UInt8(s / 100))
        out.append(UInt8(ascii: "0") + UInt8(s / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(s % 10))
    }

    static func isWritable(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool {
        guard !name.isEmpty else { return false }
        for b in name where !isTokenChar(b) { return false }
        for b in value where !isFieldValueChar(b) { return false }
        return true
    }

    static func isFramingField(_ name: UnsafeRawBufferPointer) -> Bool {
        equalsLowercase(name, "content-length") || equalsLowercase(name, "transfer-encoding")
            || equalsLowercase(name, "connection") || equalsLowercase(name, "keep-alive")
            || equalsLowercase(name, "date")
    }
}

/// Chunked transfer coding for response bodies (RFC 9112 §7.1).
public enum HTTPChunkedEncoder {
    /// Appends `bytes` as one chunk. An empty input writes nothing: an empty chunk would end the body.
    public static func appendChunk(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        appendChunkHeader(size: bytes.count, into: &out)
        out.append(contentsOf: bytes)
        out.append(contentsOf: HTTPResponseWriter.crlf)
    }

    /// The size line that precedes `size` bytes of chunk data (callers that write the data
    /// themselves, e.g. with writev, follow it with the data and CRLF).
    public static func appendChunkHeader(size: Int, into out: inout [UInt8]) {
        precondition(size > 0)
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4 * 4 - 4
        while shift >= 0 {
            out.append(digits.utf8Start[(size >> shift) & 0xF])
            shift -= 4
        }
        out.append(contentsOf: HTTPResponseWriter.crlf)
    }

    /// The last chunk, optional trailer fields and the final CRLF.
    public static func appendEnd(trailers: HTTPHeaders = HTTPHeaders(), into out: inout [UInt8]) {
        out.appendUTF8("0\r\n")
        for i in 0..<trailers.count {
            trailers.withField(at: i) { name, value in
                guard HTTPResponseWriter.isWritable(name, value), !HTTPResponseWriter.isFramingField(name) else { return }
                out.append(contentsOf: name)
                out.appendUTF8(": ")
                out.append(contentsOf: value)
                out.append(contentsOf: HTTPResponseWriter.crlf)
            }
        }
        out.append(contentsOf: HTTPResponseWriter.crlf)
    }
}
