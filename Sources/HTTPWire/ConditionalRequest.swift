/// What a static file is compared against: its modification time and an entity tag
/// made from that time and its size (as nginx does: cheap, and it changes whenever
/// either does).
public struct FileValidators: Sendable, Equatable {
    public let modified: Int64
    public let size: UInt64

    public init(modified: Int64, size: UInt64) {
        self.modified = modified
        self.size = size
    }

    /// The entity tag, `"<mtime hex>-<size hex>"` (nginx's form). Made only when a
    /// conditional header asks: a plain GET writes it with `appendETag`, no String.
    public var etag: String { String(decoding: etagBytes, as: UTF8.self) }

    public var etagBytes: [UInt8] {
        var out: [UInt8] = []
        appendETag(into: &out)
        return out
    }

    public func appendETag(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        HTTPResponseWriter.appendHex(UInt64(bitPattern: modified), into: &out)
        out.append(UInt8(ascii: "-"))
        HTTPResponseWriter.appendHex(size, into: &out)
        out.append(UInt8(ascii: "\""))
    }
}

/// RFC 9110 §13: the preconditions of a GET or HEAD of a file, in the order §13.2.2 sets.
public enum ConditionalRequest {
    public enum Outcome: Sendable, Equatable {
        /// Serve it (maybe a range of it).
        case proceed
        /// 304: the client's copy is current.
        case notModified
        /// 412: If-Match or If-Unmodified-Since failed.
        case preconditionFailed
    }

    public static func evaluate(method: String, headers: HTTPHeaders, file: FileValidators) -> Outcome {
        if let im = headers.first("If-Match") {
            if !matches(im, file.etag, weak: false) { return .preconditionFailed }
        } else if let ius = headers.first("If-Unmodified-Since"), let t = HTTPDate.parse(Substring(ius)) {
            if file.modified > t { return .preconditionFailed }
        }
        let safe = method == "GET" || method == "HEAD"
        if let inm = headers.first("If-None-Match") {
            if matches(inm, file.etag, weak: true) { return safe ? .notModified : .preconditionFailed }
        } else if safe, let ims = headers.first("If-Modified-Since"), let t = HTTPDate.parse(Substring(ims)) {
            if file.modified <= t { return .notModified }
        }
        return .proceed
    }

    /// If-Range (§13.1.5): the range applies only if the validator still matches; a
    /// strong tag compared strongly, or a date equal to Last-Modified.
    public static func rangeApplies(ifRange: String?, file: FileValidators) -> Bool {
        guard let v = ifRange?.trimmingSpaces else { return true }
        if v.hasPrefix("\"") { return v == file.etag }
        if v.hasPrefix("W/") { return false }
        return HTTPDate.parse(Substring(v)) == file.modified
    }

    /// Whether a list of entity tags (or "*") names `etag`. Weak comparison ignores "W/".
    static func matches(_ list: String, _ etag: String, weak: Bool) -> Bool {
        for item in list.split(separator: ",") {
            var tag = Substring(item.trimmingSpaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") {
                guard weak else { continue }
                tag = tag.dropFirst(2)
            }
            if tag == etag { return true }
        }
        return false
    }
}

/// A single byte range of a representation (RFC 9110 §14), the only kind served: a
/// request for several ranges gets the whole file, which the RFC allows and which
/// spares multipart bodies no browser or download tool needs.
public enum ByteRange {
    public enum Outcome: Sendable, Equatable {
        /// No usable Range header: the whole file, 200.
        case whole
        /// 206 with bytes start...end (inclusive).
        case partial(start: UInt64, end: UInt64)
        /// 416: no range overlaps the file.
        case unsatisfiable
    }

    public static func evaluate(_ header: String?, size: UInt64) -> Outcome {
        guard let header else { return .whole }
        let h = header.trimmingSpaces
        guard h.lowercased().hasPrefix("bytes=") else { return .whole }  // unknown unit: ignore
        let specs = h.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard specs.count == 1, let spec = specs.first, let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        guard first.allSatisfy(\.isASCIIDigit), last.allSatisfy(\.isASCIIDigit), !(first.isEmpty && last.isEmpty) else { return .whole }
        if first.isEmpty {  // suffix: the last N bytes
            guard let n = UInt64(last) else { return .whole }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .partial(start: size - min(n, size), end: size - 1)
        }
        guard let start = UInt64(first) else { return .unsatisfiable }  // past any file we can hold
        guard start < size else { return .unsatisfiable }
        var end = size - 1
        if !last.isEmpty {
            guard let e = UInt64(last) else { return .partial(start: start, end: end) }
            guard e >= start else { return .whole }  // invalid: ignored, as the RFC says
            end = min(e, end)
        }
        return .partial(start: start, end: end)
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
