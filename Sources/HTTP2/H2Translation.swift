/// An HTTP/2 stream as an HTTP/1.1 exchange (the way Apache's mod_http2 runs its
/// streams): the request's fields become an HTTP/1.1 request that the worker's session
/// reads like any other, so routing, limits and every exchange stay as they are; the
/// HTTP/1.1 response that comes back is read here into a status, fields and body bytes
/// for the stream.
public enum H2Translation {
    /// Fields HTTP/2 forbids (RFC 9113 §8.2.2); a response's are dropped on the way.
    static let connectionSpecific: Set<String> = ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]

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
        case head(status: Int, fields: [H2Session.Field], body: Bool)
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
                guard let end = Self.find(buffer, [13, 10, 13, 10], from: i) else { break loop }
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
                guard let lf = Self.find(buffer, [13, 10], from: i) else { break loop }
                let line = buffer[i..<lf].prefix { $0 != UInt8(ascii: ";") }
                let size = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(), radix: 16) ?? 0
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
                guard let lf = Self.find(buffer, [13, 10], from: i) else { break loop }
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

    static func find(_ b: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        guard b.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= b.count {
            if b[i] == needle[0] && Array(b[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    static func parseHead(_ head: ArraySlice<UInt8>) -> (Int, [H2Session.Field], Framing) {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.first ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        let status = parts.count > 1 ? Int(parts[1]) ?? 502 : 502
        var fields: [H2Session.Field] = []
        var framing = Framing.untilEnd
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters()
            if name == "transfer-encoding", value.lowercased().contains("chunked") { framing = .chunked }
            if name == "content-length", case .untilEnd = framing, let n = Int(value) { framing = n == 0 ? .none : .length(n) }
            if H2Translation.connectionSpecific.contains(name) { continue }
            fields.append(H2Session.Field(name, value))
        }
        return (status, fields, framing)
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
