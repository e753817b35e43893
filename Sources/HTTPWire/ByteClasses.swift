// Byte classes from RFC 9110 §5.6 and RFC 9112, as small inlinable predicates.
// Switches over ranges compile to a few comparisons; no lookup tables to initialise.

@usableFromInline enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let comma: UInt8 = 0x2C
    static let equals: UInt8 = 0x3D
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let slash: UInt8 = 0x2F
}

/// tchar: "!#$%&'*+-.^_`|~" / DIGIT / ALPHA (RFC 9110 §5.6.2).
@inline(__always) func isTokenChar(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

/// field-vchar / SP / HTAB: what may appear inside a field value (obs-text allowed, CTLs and DEL not).
@inline(__always) func isFieldValueChar(_ b: UInt8) -> Bool {
    b == ASCII.htab || (b >= 0x20 && b != 0x7F)
}

/// Visible ASCII, the only bytes we accept in a request-target.
@inline(__always) func isTargetChar(_ b: UInt8) -> Bool {
    b > 0x20 && b < 0x7F && b != UInt8(ascii: "#")
}

@inline(__always) func isOWS(_ b: UInt8) -> Bool { b == ASCII.sp || b == ASCII.htab }

@inline(__always) func hexValue(_ b: UInt8) -> UInt64? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(b - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(b - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(b - UInt8(ascii: "A") + 10)
    default: return nil
    }
}

/// An ASCII byte in lower case (other bytes as they are): the one case fold of names,
/// tokens and extensions, in every module.
@inlinable @inline(__always) public func asciiLowercase(_ b: UInt8) -> UInt8 {
    (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) ? b | 0x20 : b
}

/// Whether `bytes` equal the all-lowercase `lower`, ignoring ASCII case.
@inlinable
public func equalsLowercaseASCII(_ bytes: UnsafeRawBufferPointer, _ lower: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count == lower.count else { return false }
    for k in 0..<bytes.count where asciiLowercase(bytes[k]) != lower[k] { return false }
    return true
}

/// Case-insensitive comparison of raw bytes with a lowercase ASCII literal.
@inlinable @inline(__always) public func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
    equalsLowercaseASCII(bytes, UnsafeRawBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount))
}

/// Returns `bytes` without leading and trailing SP/HTAB.
@inline(__always) func trimOWS(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    var lo = 0, hi = bytes.count
    while lo < hi && isOWS(bytes[lo]) { lo += 1 }
    while hi > lo && isOWS(bytes[hi - 1]) { hi -= 1 }
    return UnsafeRawBufferPointer(rebasing: bytes[lo..<hi])
}

/// Calls `body` with each comma-separated element of a list-valued field (RFC 9110 §5.6.1),
/// trimmed of OWS. Empty elements are passed as empty buffers so callers can reject them.
@inline(__always) func forEachListElement(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws(HTTPParseError) -> Void) throws(HTTPParseError) {
    var start = 0
    for i in 0...value.count where i == value.count || value[i] == ASCII.comma {
        try body(trimOWS(UnsafeRawBufferPointer(rebasing: value[start..<i])))
        start = i + 1
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality with an all-lowercase `lower`, without making a
    /// lowercased copy (field names are compared on every response).
    /// (Index walking, not `zip`: called across modules, a zip of two UTF8Views was
    /// unspecialized and looked up its generic metadata per call, 7% of an epoll worker.)
    @inlinable
    public func equalsLowercaseASCII(_ lower: String) -> Bool {
        let u = utf8, l = lower.utf8
        guard u.count == l.count else { return false }
        // Native and small strings (all of ours) compare as two byte buffers.
        if let same = u.withContiguousStorageIfAvailable({ a in
            l.withContiguousStorageIfAvailable { b in HTTPWire.equalsLowercaseASCII(UnsafeRawBufferPointer(a), UnsafeRawBufferPointer(b)) }
        }), let same { return same }
        var i = u.startIndex, j = l.startIndex
        while i != u.endIndex {
            let a = u[i]
            if asciiLowercase(a) != l[j] { return false }
            u.formIndex(after: &i)
            l.formIndex(after: &j)
        }
        return true
    }
}

extension Array where Element == UInt8 {
    /// Appends a String's UTF-8 bytes by one copy of its storage (native, small and
    /// literal Strings: all of ours). `append(contentsOf: s.utf8)` goes through the
    /// generic sequence path, several times the cost, and heads are written per request.
    @inlinable
    public mutating func appendUTF8(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil { append(contentsOf: s.utf8) }
    }
}
