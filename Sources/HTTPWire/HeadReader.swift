/// Reads one complete head (request line, field lines, blank line) already located in
/// the buffer, validates it strictly and decides framing, keep-alive and Expect.
struct HeadReader {
    let limits: HTTPLimits

    func readHead(_ buf: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead {
        guard buf.count <= limits.maxHeadSize else {
            throw HTTPParseError(431, "request head larger than \(limits.maxHeadSize) bytes")
        }
        let (lineEnd, next) = try lineBounds(buf, from: 0)
        guard lineEnd <= limits.maxRequestLine else {
            throw HTTPParseError(414, "request line longer than \(limits.maxRequestLine) bytes")
        }
        let (method, target, version) = try readRequestLine(UnsafeRawBufferPointer(rebasing: buf[0..<lineEnd]))
        let headers = try readFields(buf, startingAt: next)
        return try interpret(method: method, target: target, version: version, headers: headers)
    }

    /// The end of the line content (CR excluded) and the index after its LF.
    /// A CR anywhere but right before the LF is a bare CR (RFC 9112 §2.2).
    private func lineBounds(_ buf: UnsafeRawBufferPointer, from start: Int) throws(HTTPParseError) -> (Int, Int) {
        var i = start
        while i < buf.count {
            let b = buf[i]
            if b == ASCII.lf { return (i, i + 1) }
            if b == ASCII.cr {
                guard i + 1 < buf.count && buf[i + 1] == ASCII.lf else { throw .bad("bare CR in head") }
                return (i, i + 2)
            }
            i += 1
        }
        throw .bad("unterminated line in head")
    }

    private func readRequestLine(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> (String, String, HTTPVersion) {
        var i = 0
        while i < line.count && isTokenChar(line[i]) { i += 1 }
        guard i > 0, i < line.count, line[i] == ASCII.sp else { throw .bad("invalid method token") }
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<i]), as: UTF8.self)
        i += 1
        let targetStart = i
        while i < line.count && isTargetChar(line[i]) { i += 1 }
        guard i > targetStart, i < line.count, line[i] == ASCII.sp else { throw .bad("invalid request target") }
        let targetBytes = UnsafeRawBufferPointer(rebasing: line[targetStart..<i])
        i += 1
        let version = try readVersion(UnsafeRawBufferPointer(rebasing: line[i...]))
        try checkTargetForm(targetBytes, method: method)
        return (method, String(decoding: targetBytes, as: UTF8.self), version)
    }

    /// HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. Major 1 only (505 otherwise).
    private func readVersion(_ v: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPVersion {
        let prefix: StaticString = "HTTP/"
        guard v.count == 8 else { throw .bad("invalid HTTP version") }
        for j in 0..<5 where v[j] != prefix.utf8Start[j] { throw .bad("invalid HTTP version") }
        let d0 = UInt8(ascii: "0"), d9 = UInt8(ascii: "9")
        guard (d0...d9).contains(v[5]), v[6] == UInt8(ascii: "."), (d0...d9).contains(v[7]) else {
            throw .bad("invalid HTTP version")
        }
        let version = HTTPVersion(major: Int(v[5] - d0), minor: Int(v[7] - d0))
        guard version.major == 1 else { throw HTTPParseError(505, "HTTP version \(version) not supported") }
        return version
    }

    /// origin-form ("/..."), asterisk-form (OPTIONS only), authority-form (CONNECT only),
    /// or absolute-form ("scheme://...").
    private func checkTargetForm(_ t: UnsafeRawBufferPointer, method: String) throws(HTTPParseError) {
        if t[0] == ASCII.slash { return }
        if t.count == 1 && t[0] == UInt8(ascii: "*") {
            guard method == "OPTIONS" else { throw .bad("asterisk-form target outside OPTIONS") }
            return
        }
        if method == "CONNECT" {
            for b in t where b == ASCII.slash || b == UInt8(ascii: "?") { throw .bad("invalid authority-form target") }
            return
        }
        // absolute-form: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) then "://"
        var i = 0
        while i < t.count {
            let b = t[i]
            let alpha = (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z")
            let ok = alpha || (i > 0 && ((b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")))
            if !ok { break }
            i += 1
        }
        guard i > 0, i + 3 <= t.count, t[i] == ASCII.colon, t[i + 1] == ASCII.slash, t[i + 2] == ASCII.slash else {
            throw .bad("invalid request target form")
        }
    }

    /// Reads field lines from `start` up to the blank line that ends `buf`.
    /// Shared by heads and chunked trailer sections.
    func readFields(_ buf: UnsafeRawBufferPointer, startingAt start: Int) throws(HTTPParseError) -> HTTPHeaders {
        var fields: [HTTPHeaders.Field] = []
        var pos = start
        while true {
            let (end, next) = try lineBounds(buf, from: pos)
            if end == pos { break }  // the blank line
            guard end - pos <= limits.maxHeaderFieldSize else {
                throw HTTPParseError(431, "header field longer than \(limits.maxHeaderFieldSize) bytes")
            }
            guard fields.count < limits.maxHeaderCount else {
                throw HTTPParseError(431, "more than \(limits.maxHeaderCount) header fields")
            }
            fields.append(try readField(buf, pos, end, base: start))
            pos = next
        }
        guard fields.count > 0 else { return HTTPHeaders() }
        let storage = [UInt8](UnsafeRawBufferPointer(rebasing: buf[start..<pos]))
        return HTTPHeaders(storage: storage, fields: fields)
    }

    private func readField(_ buf: UnsafeRawBufferPointer, _ start: Int, _ end: Int, base: Int) throws(HTTPParseError) -> HTTPHeaders.Field {
        if isOWS(buf[start]) { throw .bad("obsolete line folding (obs-fold)") }
        var i = start
        while i < end && isTokenChar(buf[i]) { i += 1 }
        guard i < end, buf[i] == ASCII.colon else {
            if i < end && isOWS(buf[i]) { throw .bad("whitespace between field name and colon") }
            throw .bad(i == end ? "field line without a colon" : "invalid byte in field name")
        }
        guard i > start else { throw .bad("empty field name") }
        let nameEnd = i
        var vs = i + 1, ve = end
        while vs < ve && isOWS(buf[vs]) { vs += 1 }
        while ve > vs && isOWS(buf[ve - 1]) { ve -= 1 }
        for j in vs..<ve where !isFieldValueChar(buf[j]) { throw .bad("control byte in field value") }
        return HTTPHeaders.Field(nameStart: Int32(start - base), nameEnd: Int32(nameEnd - base),
                                 valueStart: Int32(vs - base), valueEnd: Int32(ve - base))
    }

    // MARK: - Semantics

    private func interpret(method: String, target: String, version: HTTPVersion, headers: HTTPHeaders) throws(HTTPParseError) -> HTTPRequestHead {
        var host: String? = nil
        var hostCount = 0
        var contentLength: UInt64? = nil
        var sawTransferEncoding = false
        var chunkedCount = 0
        var chunkedLast = false
        var otherCoding = false
        var close = false, keepAliveToken = false
        var expectContinue = false

        for i in 0..<headers.count {
            try headers.withField(at: i) { (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(HTTPParseError) in
                switch name.count {
                case 4 where equalsLowercase(name, "host"):
                    hostCount += 1
                    guard hostCount == 1 else { throw .bad("duplicate Host") }
                    // Empty is allowed by RFC 9112 §3.2 only for a target without an
                    // authority, which no origin server receives; nginx refuses it too.
                    guard !value.isEmpty else { throw .bad("empty Host") }
                    for b in value where !isHostChar(b) { throw .bad("invalid Host") }
                    host = String(decoding: value, as: UTF8.self)
                case 14 where equalsLowercase(name, "content-length"):
                    guard contentLength == nil else { throw .bad("duplicate Content-Length") }
                    contentLength = try parseContentLength(value)
                case 17 where equalsLowercase(name, "transfer-encoding"):
                    sawTransferEncoding = true
                    try forEachListElement(value) { (coding: UnsafeRawBufferPointer) throws(HTTPParseError) in
                        guard !coding.isEmpty else { throw .bad("empty transfer coding") }
                        if equalsLowercase(coding, "chunked") {
                            chunkedCount += 1
                            chunkedLast = true
                        } else {
                            for b in coding where !isTokenChar(b) && !isOWS(b) && b != ASCII.semicolon && b != ASCII.equals && b != ASCII.quote {
                                throw .bad("invalid transfer coding")
                            }
                            otherCoding = true
                            chunkedLast = false
                        }
                    }
                case 10 where equalsLowercase(name, "connection"):
                    try forEachListElement(value) { (token: UnsafeRawBufferPointer) throws(HTTPParseError) in
                        if equalsLowercase(token, "close") { close = true }
                        else if equalsLowercase(token, "keep-alive") { keepAliveToken = true }
                    }
                case 6 where equalsLowercase(name, "expect"):
                    guard equalsLowercase(value, "100-continue") else {
                        throw HTTPParseError(417, "unsupported expectation")
                    }
                    // RFC 9110 §10.1.1: ignore 100-continue from an HTTP/1.0 client.
                    expectContinue = version.minor >= 1
                default:
                    break
                }
            }
        }

        if version.minor >= 1 && hostCount == 0 { throw .bad("missing Host in an HTTP/1.1 request") }
        // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
        if let authority = Self.absoluteFormAuthority(target) {
            guard !authority.isEmpty, authority.utf8.allSatisfy(isHostChar), !authority.contains("@") else {
                throw .bad("invalid authority in an absolute-form target")
            }
            host = String(authority)
        }

        let framing: HTTPBodyFraming
        if sawTransferEncoding {
            guard version.minor >= 1 else { throw .bad("Transfer-Encoding in an HTTP/1.0 request") }
            guard contentLength == nil else { throw .bad("both Content-Length and Transfer-Encoding") }
            guard chunkedLast else { throw .bad("Transfer-Encoding does not end in chunked") }
            guard chunkedCount == 1 else { throw .bad("chunked applied more than once") }
            guard !otherCoding else { throw HTTPParseError(501, "transfer coding other than chunked") }
            framing = .chunked
        } else if let n = contentLength {
            guard n <= limits.maxBodySize else { throw HTTPParseError(413, "body larger than \(limits.maxBodySize) bytes") }
            framing = .contentLength(n)
        } else {
            framing = .none
        }

        let keepAlive = version.minor >= 1 ? !close : (keepAliveToken && !close)
        return HTTPRequestHead(method: method, target: target, version: version, headers: headers,
                               keepAlive: keepAlive, expectContinue: expectContinue, framing: framing, host: host)
    }

    /// Content-Length = 1*DIGIT: no sign, no list form, no whitespace, no overflow.
    private func parseContentLength(_ value: UnsafeRawBufferPointer) throws(HTTPParseError) -> UInt64 {
        guard !value.isEmpty, value.count <= 19 else { throw .bad("invalid Content-Length") }
        var n: UInt64 = 0
        for b in value {
            guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { throw .bad("invalid Content-Length") }
            n = n * 10 + UInt64(b - UInt8(ascii: "0"))
        }
        return n
    }

    /// "example.com:8080" of "http://example.com:8080/x"; nil for other target forms.
    static func absoluteFormAuthority(_ target: String) -> Substring? {
        guard let start = HTTPRequestHead.authorityStart(target) else { return nil }
        let rest = target[start...]
        return rest[..<(rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex)]
    }

    /// uri-host [":" port]: reg-name, IPv4 or an IP-literal in brackets.
    private func isHostChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
             UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"), UInt8(ascii: "!"), UInt8(ascii: "$"),
             UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"),
             UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
