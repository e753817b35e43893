/// An HTTP/2 stream as an HTTP/1.1 exchange (the way Apache's mod_http2 runs its
/// streams): the request's fields become an HTTP/1.1 request that the worker's session
/// reads like any other, so routing, limits and every exchange stay as they are; the
/// HTTP/1.1 response that comes back is read here into a status, fields and body bytes
/// for the stream.
public enum H2Translation {

    /// The HTTP/1.1 request head for a stream's fields, or nil with the status to answer
    /// (a CONNECT, a missing pseudo-header). `body`: a body follows; without a
    /// content-length it is sent chunked (`chunk`). The request asks for Connection:
    /// close, so the session ends after its one response.
    public static func request(_ fields: [H2Session.Field], body: Bool) -> (head: [UInt8], chunked: Bool)? {
        var method = "", path = "", authority = ""
        var rest: [H2Session.Field] = []
        var cookies: [String] = []
        var hasLength = false
        for f in fields {
            switch f.name {
            case ":method": method = f.value
            case ":path": path = f.value
            case ":authority": authority = f.value
            case ":scheme": break
            case "cookie": cookies.append(f.value)  // crumbs, joined again (RFC 9113 §8.2.3)
            case "host": if authority.isEmpty { authority = f.value }
            case "te", "expect": break  // only "trailers" may come; no 100-continue on a stream
            default:
                if f.name.hasPrefix(":") { return nil }
                if f.name == "content-length" { hasLength = true }
                rest.append(f)
            }
        }
        guard !method.isEmpty, method != "CONNECT", !path.isEmpty else { return nil }
        var head = "\(method) \(path) HTTP/1.1\r\n"
        if !authority.isEmpty { head += "Host: \(authority)\r\n" }
        if !cookies.isEmpty { head += "Cookie: \(cookies.joined(separator: "; "))\r\n" }
        for f in rest { head += "\(f.name): \(f.value)\r\n" }
        let chunked = body && !hasLength
        if chunked { head += "Transfer-Encoding: chunked\r\n" }
        head += "Connection: close\r\n\r\n"
        return (Array(head.utf8), chunked)
    }

    /// A piece of a chunked request body (nothing for an empty piece).
    public static func chunk(_ bytes: [UInt8], into out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        out += Array(String(bytes.count, radix: 16).utf8) + [13, 10] + bytes + [13, 10]
    }

    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
}

/// Reads the HTTP/1.1 response the worker writes for a stream (well-formed: it is our
/// own) into what the stream sends: the head once, body bytes, the end.
public struct H1ResponseReader {
    public enum Output: Equatable {
        case head(status: Int, fields: H2FieldBlock, body: Bool)
        case body([UInt8])
        case end
    }

    enum Framing { case length(Int), chunked, untilEnd, none }
    enum State { case head, body(Framing), chunkSize, chunkData(Int), chunkEnd(Int), trailers, done }

    private var state = State.head
    private var buffer: [UInt8] = []
    let isHead: Bool

    public init(requestMethod: String) {
        isHead = requestMethod == "HEAD"
    }

    public var done: Bool { if case .done = state { true } else { false } }

    /// Bytes the worker wrote; what the stream should send now.
    public mutating func receive(_ bytes: ArraySlice<UInt8>) -> [Output] {
        var out: [Output] = []
        if case .body(.length(let left)) = state, buffer.isEmpty {
            // The common case, without copying through the buffer.
            let take = min(left, bytes.count)
            out.append(.body(Array(bytes.prefix(take))))
            state = left - take == 0 ? .done : .body(.length(left - take))
            if case .done = state { out.append(.end) }
            return out
        }
        buffer += bytes
        var i = 0
        loop: while true {
            switch state {
            case .head:
                guard let end = Self.find(buffer[...], [13, 10, 13, 10], from: i) else { break loop }
                let (status, fields, framing) = Self.parseHead(buffer[i..<end])
                i = end + 4
                if status < 200 { continue }  // an interim answer (1xx): not sent on a stream
                let noBody = isHead || status == 204 || status == 304
                out.append(.head(status: status, fields: fields, body: !noBody))
                state = noBody ? .done : .body(framing)
                if noBody { out.append(.end) }
            case .body(.length(let left)):
                let take = min(left, buffer.count - i)
                if take > 0 { out.append(.body(Array(buffer[i..<(i + take)]))) }
                i += take
                state = left - take == 0 ? .done : .body(.length(left - take))
                if case .done = state { out.append(.end) }
                break loop
            case .body(.untilEnd):
                if i < buffer.count { out.append(.body(Array(buffer[i...]))) }
                i = buffer.count
                break loop
            case .body(.none):
                state = .done
                out.append(.end)
            case .body(.chunked), .chunkSize:
                guard let lf = Self.find(buffer[...], Self.crlf, from: i) else { break loop }
                let size = Self.hex(buffer[i..<lf].prefix { $0 != UInt8(ascii: ";") })
                i = lf + 2
                state = size == 0 ? .trailers : .chunkData(size)
            case .chunkData(let left):
                let take = min(left, buffer.count - i)
                if take > 0 { out.append(.body(Array(buffer[i..<(i + take)]))) }
                i += take
                if left - take > 0 {
                    state = .chunkData(left - take)
                    break loop
                }
                state = .chunkEnd(2)
            case .chunkEnd(let left):
                let take = min(left, buffer.count - i)
                i += take
                if left - take > 0 {
                    state = .chunkEnd(left - take)
                    break loop
                }
                state = .chunkSize
            case .trailers:
                guard let lf = Self.find(buffer[...], Self.crlf, from: i) else { break loop }
                let empty = lf == i
                i = lf + 2
                if empty {
                    state = .done
                    out.append(.end)
                }
            case .done:
                i = buffer.count
                break loop
            }
        }
        buffer.removeFirst(i)
        return out
    }

    /// The worker closed the stream's response (a body that ran until the close ends).
    public mutating func closed() -> [Output] {
        if case .body(.untilEnd) = state {
            state = .done
            return [.end]
        }
        return []
    }

    /// Where `needle` begins in `b` at or after `from` (no copy per candidate).
    static func find(_ b: ArraySlice<UInt8>, _ needle: [UInt8], from: Int) -> Int? {
        var i = from
        while i + needle.count <= b.endIndex {
            if b[i] == needle[0] && b[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// The status, the fields (names lowercased, connection fields dropped) and the
    /// framing of a response head, read as bytes (this runs for every stream).
    static func parseHead(_ head: ArraySlice<UInt8>) -> (Int, H2FieldBlock, Framing) {
        var block = H2FieldBlock()
        var framing = Framing.untilEnd
        var i = head.startIndex
        let end = head.endIndex
        // The status line: "HTTP/1.1 200 OK".
        var status = 502
        if let sp = head[i..<end].firstIndex(of: UInt8(ascii: " ")), sp + 3 < end {
            let d = head[(sp + 1)...(sp + 3)]
            if d.allSatisfy({ $0 >= 48 && $0 <= 57 }) { status = d.reduce(0) { $0 * 10 + Int($1 - 48) } }
        }
        i = Self.find(head, Self.crlf, from: i).map { $0 + 2 } ?? end
        while i < end {
            let eol = Self.find(head, Self.crlf, from: i) ?? end
            defer { i = eol + 2 }
            guard let colon = head[i..<eol].firstIndex(of: UInt8(ascii: ":")) else { continue }
            var v = colon + 1
            while v < eol && (head[v] == 32 || head[v] == 9) { v += 1 }
            var ve = eol
            while ve > v && (head[ve - 1] == 32 || head[ve - 1] == 9) { ve -= 1 }
            let name = head[i..<colon], value = head[v..<ve]
            if Self.equalsLower(name, "transfer-encoding") {
                if Self.containsLower(value, "chunked") { framing = .chunked }
                continue
            }
            if Self.equalsLower(name, "content-length"), case .untilEnd = framing, let n = Self.decimal(value) {
                framing = n == 0 ? .none : .length(n)
            }
            if Self.equalsLower(name, "connection") || Self.equalsLower(name, "keep-alive") || Self.equalsLower(name, "upgrade")
                || Self.equalsLower(name, "proxy-connection") { continue }
            block.append(name: name, value: value)
        }
        return (status, block, framing)
    }

    static let crlf: [UInt8] = [13, 10]

    /// A chunk-size line's number (our own writer's: hex digits, maybe spaces).
    static func hex(_ b: ArraySlice<UInt8>) -> Int {
        var n = 0
        for c in b {
            switch c {
            case 48...57: n = n * 16 + Int(c - 48)
            case 65...70, 97...102: n = n * 16 + Int(c | 0x20) - 87
            default: continue
            }
        }
        return n
    }

    static func equalsLower(_ b: ArraySlice<UInt8>, _ s: StaticString) -> Bool {
        guard b.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        var k = 0
        for c in b {
            let l = c >= 65 && c <= 90 ? c | 0x20 : c
            if l != p[k] { return false }
            k += 1
        }
        return true
    }

    static func containsLower(_ b: ArraySlice<UInt8>, _ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard b.count >= n else { return false }
        var i = b.startIndex
        while i + n <= b.endIndex {
            if equalsLower(b[i..<(i + n)], s) { return true }
            i += 1
        }
        return false
    }

    static func decimal(_ b: ArraySlice<UInt8>) -> Int? {
        guard !b.isEmpty, b.count <= 18, b.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return b.reduce(0) { $0 * 10 + Int($1 - 48) }
    }
}

/// A response's fields as HTTP/2 sends them: names lowercased, in one buffer, so the
/// session points nghttp2 at them without a String or an array per field.
public struct H2FieldBlock: Equatable, Sendable {
    var storage: [UInt8] = []
    /// nameStart, nameEnd, valueStart, valueEnd for each field.
    var spans: [Int32] = []

    public init() {}

    public init(_ fields: [H2Session.Field]) {
        for f in fields { append(name: Array(f.name.utf8)[...], value: Array(f.value.utf8)[...]) }
    }

    public mutating func append(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>) {
        let n = Int32(storage.count)
        for c in name { storage.append(c >= 65 && c <= 90 ? c | 0x20 : c) }
        let v = Int32(storage.count)
        storage += value
        spans += [n, v, v, Int32(storage.count)]
    }

    /// The fields as Strings (tests, logs).
    public var list: [H2Session.Field] {
        var out: [H2Session.Field] = []
        for k in stride(from: 0, to: spans.count, by: 4) {
            let name: ArraySlice<UInt8> = storage[Int(spans[k])..<Int(spans[k + 1])]
            let value: ArraySlice<UInt8> = storage[Int(spans[k + 2])..<Int(spans[k + 3])]
            out.append(H2Session.Field(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return out
    }
}
