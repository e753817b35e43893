import HTTPWire

/// The parsed head of a CGI (or FastCGI STDOUT) response, RFC 3875 §6.
public struct CGIResponseHead: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A document: send `status`, the headers and the body.
        case document
        /// `Location: /path` without Status: the server fetches that path itself.
        case localRedirect(String)
        /// `Location: scheme://...` (or a network path): 302 unless Status says otherwise.
        case clientRedirect(String)
    }

    public var status: Int
    public var reason: String?
    /// Every field except Status, in order (Content-Type and Location included).
    public var headers: [CGIHeaderField]
    public var kind: Kind
    /// It has a non-empty X-Accel-Redirect or X-Sendfile field (found while parsing, so
    /// an ordinary answer is never searched for one again).
    public var handsOver = false

    public var contentType: String? { headers.first { $0.name.equalsLowercaseASCII("content-type") }?.value }
    public var location: String? { headers.first { $0.name.equalsLowercaseASCII("location") }?.value }
}

public struct CGIHeaderField: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

public struct CGIResponseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "bad CGI response: \(message)" }
}

/// Incremental parser for the CGI response head. Lines may end in CRLF or LF (scripts
/// write both). Same contract as the other parsers: pass the unconsumed bytes; a nil
/// head means more are needed; bytes after the blank line are the body.
public struct CGIResponseHeadParser: Sendable {
    public let maxHeadSize: Int
    var scanned = 0

    public init(maxHeadSize: Int = 65536) {
        self.maxHeadSize = maxHeadSize
    }

    /// The fields by which an app hands its response to the server: nginx's
    /// X-Accel-Redirect, and X-Sendfile under its Apache and lighttpd names.
    public static func handsOver(_ name: String) -> Bool {
        guard let first = name.utf8.first, first | 0x20 == UInt8(ascii: "x") else { return false }
        return name.equalsLowercaseASCII("x-accel-redirect") || name.equalsLowercaseASCII("x-sendfile")
            || name.equalsLowercaseASCII("x-lighttpd-send-file")
    }

    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(CGIResponseError) -> (consumed: Int, head: CGIResponseHead?) {
        let lf: UInt8 = 0x0A, cr: UInt8 = 0x0D
        var i = scanned
        // An empty head (blank first line) is invalid; check it up front.
        if input.count >= 1 && input[0] == lf { throw CGIResponseError("no header fields") }
        if input.count >= 2 && input[0] == cr && input[1] == lf { throw CGIResponseError("no header fields") }
        while i < input.count {
            if input[i] == lf {
                if i + 1 >= input.count { break }
                var end: Int? = nil
                if input[i + 1] == lf { end = i + 2 }
                else if input[i + 1] == cr {
                    if i + 2 >= input.count { break }
                    if input[i + 2] == lf { end = i + 3 }
                }
                if let end {
                    guard end <= maxHeadSize else { throw CGIResponseError("head larger than \(maxHeadSize) bytes") }
                    scanned = 0
                    return (end, try Self.readHead(UnsafeRawBufferPointer(rebasing: input[0..<end])))
                }
            }
            i += 1
        }
        scanned = i
        if input.count > maxHeadSize { throw CGIResponseError("head larger than \(maxHeadSize) bytes") }
        return (0, nil)
    }

    public mutating func parse(_ input: ArraySlice<UInt8>) throws(CGIResponseError) -> (consumed: Int, head: CGIResponseHead?) {
        var r: Result<(Int, CGIResponseHead?), CGIResponseError>!
        input.withUnsafeBytes { b in
            do throws(CGIResponseError) { r = .success(try parse(b)) } catch { r = .failure(error) }
        }
        return try r.get()
    }

    static func readHead(_ buf: UnsafeRawBufferPointer) throws(CGIResponseError) -> CGIResponseHead {
        var headers: [CGIHeaderField] = []
        var status: Int? = nil
        var reason: String? = nil
        var location: String? = nil
        var sawCGIField = false
        var handsOver = false
        var pos = 0
        while pos < buf.count {
            var lineEnd = pos
            while buf[lineEnd] != 0x0A { lineEnd += 1 }
            let next = lineEnd + 1
            if lineEnd > pos && buf[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == pos { break }
            let (name, value) = try readField(UnsafeRawBufferPointer(rebasing: buf[pos..<lineEnd]))
            if name.equalsLowercaseASCII("status") {
                guard status == nil else { throw CGIResponseError("more than one Status field") }
                (status, reason) = try readStatus(value)
                sawCGIField = true
            } else if name.equalsLowercaseASCII("location") {
                guard location == nil else { throw CGIResponseError("more than one Location field") }
                guard !value.isEmpty else { throw CGIResponseError("empty Location") }
                location = value
                headers.append(CGIHeaderField(name, value))
                sawCGIField = true
            } else {
                headers.append(CGIHeaderField(name, value))
                // A head that hands the response to the server (X-Accel-Redirect, X-Sendfile)
                // needs no Content-Type: the file's name gives one.
                if name.equalsLowercaseASCII("content-type") {
                    sawCGIField = true
                } else if !value.isEmpty && Self.handsOver(name) {
                    sawCGIField = true
                    handsOver = true
                }
            }
            pos = next
        }
        guard sawCGIField else { throw CGIResponseError("none of Content-Type, Location, Status or X-Accel-Redirect") }
        var kind = CGIResponseHead.Kind.document
        if let loc = location {
            let local = loc.hasPrefix("/") && !loc.hasPrefix("//")
            if local && status == nil {
                kind = .localRedirect(loc)
            } else if !local {
                kind = .clientRedirect(loc)
                if status == nil { status = 302 }
            }
        }
        var head = CGIResponseHead(status: status ?? 200, reason: reason, headers: headers, kind: kind)
        head.handsOver = handsOver
        return head
    }

    /// name ":" OWS value OWS; a token name; no CR, LF, NUL or other control byte in
    /// the value (no response splitting); no continuation lines.
    static func readField(_ line: UnsafeRawBufferPointer) throws(CGIResponseError) -> (String, String) {
        guard let first = line.first, first != 0x20, first != 0x09 else { throw CGIResponseError("continuation line") }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
            throw CGIResponseError("header line without a name and colon")
        }
        for b in line[0..<colon] where !isToken(b) { throw CGIResponseError("invalid byte in header name") }
        var vs = colon + 1, ve = line.count
        while vs < ve && (line[vs] == 0x20 || line[vs] == 0x09) { vs += 1 }
        while ve > vs && (line[ve - 1] == 0x20 || line[ve - 1] == 0x09) { ve -= 1 }
        for b in line[vs..<ve] where b != 0x09 && (b < 0x20 || b == 0x7F) {
            throw CGIResponseError("control byte (CR, LF, NUL...) in a header value")
        }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<colon]), as: UTF8.self),
                String(decoding: UnsafeRawBufferPointer(rebasing: line[vs..<ve]), as: UTF8.self))
    }

    /// "404 Not Found" or "404": three digits, 200-999 (a CGI program cannot send 1xx).
    static func readStatus(_ value: String) throws(CGIResponseError) -> (Int, String?) {
        let u = Array(value.utf8)
        guard u.count >= 3, u[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), u.count == 3 || u[3] == 0x20 else {
            throw CGIResponseError("invalid Status \"\(value)\"")
        }
        let code = Int(u[0] - 0x30) * 100 + Int(u[1] - 0x30) * 10 + Int(u[2] - 0x30)
        guard code >= 200 else { throw CGIResponseError("invalid Status \"\(value)\"") }
        let reason = u.count > 4 ? String(decoding: u[4...], as: UTF8.self) : nil
        return (code, reason)
    }

    static func isToken(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }
}
