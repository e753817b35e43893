/// Name-value pair coding (spec §3.4): each length is one byte when below 128, else four
/// bytes big-endian with the top bit set.
public enum FastCGINameValue {
    public static let maxLength = Int(Int32.max)

    /// The bytes a length takes.
    @inline(__always) static func lengthSize(_ n: Int) -> Int { n < 128 ? 1 : 4 }

    @inline(__always) static func appendLength(_ n: Int, into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: lengthSize(n)))
        out.withUnsafeMutableBufferPointer { _ = writeLength(n, $0.baseAddress! + start) }
    }

    public static func append<N: Collection, V: Collection>(name: N, value: V, into out: inout [UInt8])
    where N.Element == UInt8, V.Element == UInt8 {
        appendLength(name.count, into: &out)
        appendLength(value.count, into: &out)
        out.append(contentsOf: name)
        out.append(contentsOf: value)
    }

    public static func append(name: String, value: String, into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: encodedSize(name: name, value: value)))
        out.withUnsafeMutableBufferPointer { _ = write(name: name, value: value, into: $0, at: start) }
    }

    /// The bytes a pair takes: its two lengths, its name and its value.
    static func encodedSize(name: String, value: String) -> Int {
        let n = name.utf8.count, v = value.utf8.count
        return lengthSize(n) + lengthSize(v) + n + v
    }

    /// Writes one pair at `at` into room already made for it (its encoded length);
    /// returns where the next one goes. (Straight-line code: nested functions that
    /// captured `at` made each store an exclusivity-checked access.)
    static func write(name: String, value: String, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        let base = buffer.baseAddress!
        var at = writeLength(name.utf8.count, base + start) - base
        at = writeLength(value.utf8.count, base + at) - base
        at += writeBytes(name, base + at)
        at += writeBytes(value, base + at)
        return at
    }

    /// A pair whose value is a prefix and a number ("t=" and 1796616552946123), written
    /// as digits straight into the record: no String per request.
    public struct DecimalPair: Sendable {
        public let name: StaticString
        public let prefix: StaticString
        public let value: UInt64

        public init(_ name: StaticString, prefix: StaticString = "", _ value: UInt64) {
            self.name = name
            self.prefix = prefix
            self.value = value
        }

        var digits: Int {
            var n = 1, v = value
            while v >= 10 { v /= 10; n += 1 }
            return n
        }

        var encodedSize: Int {
            let valueLength = prefix.utf8CodeUnitCount + digits
            return lengthSize(name.utf8CodeUnitCount) + lengthSize(valueLength) + name.utf8CodeUnitCount + valueLength
        }

        func write(into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
            let base = buffer.baseAddress!
            let count = digits
            var p = writeLength(name.utf8CodeUnitCount, base + start)
            p = writeLength(prefix.utf8CodeUnitCount + count, p)
            p.update(from: name.utf8Start, count: name.utf8CodeUnitCount)
            p += name.utf8CodeUnitCount
            p.update(from: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
            p += prefix.utf8CodeUnitCount
            var v = value
            for i in stride(from: count - 1, through: 0, by: -1) {
                p[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
            return p + count - base
        }
    }

    @inline(__always) static func writeLength(_ n: Int, _ p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        precondition(n >= 0 && n <= maxLength, "FastCGI name or value too long")
        if n < 128 {
            p[0] = UInt8(n)
            return p + 1
        }
        p[0] = UInt8(truncatingIfNeeded: n >> 24) | 0x80
        p[1] = UInt8(truncatingIfNeeded: n >> 16)
        p[2] = UInt8(truncatingIfNeeded: n >> 8)
        p[3] = UInt8(truncatingIfNeeded: n)
        return p + 4
    }

    @inline(__always) static func writeBytes(_ s: String, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        let n = s.utf8.count
        let copied: Bool? = s.utf8.withContiguousStorageIfAvailable { src in
            if n > 0 { p.update(from: src.baseAddress!, count: n) }
            return true
        }
        if copied == nil { _ = UnsafeMutableBufferPointer(start: p, count: n).initialize(from: s.utf8) }
        return n
    }

    /// Decodes a complete sequence of pairs; throws on a truncated length or body.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FastCGIError) -> [FastCGIPair] {
        var pairs: [FastCGIPair] = []
        var i = 0
        func length() throws(FastCGIError) -> Int {
            guard i < bytes.count else { throw FastCGIError("truncated name-value length") }
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; return Int(b0) }
            guard i + 4 <= bytes.count else { throw FastCGIError("truncated name-value length") }
            let n = Int(b0 & 0x7F) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            i += 4
            return n
        }
        while i < bytes.count {
            let nl = try length()
            let vl = try length()
            guard nl <= bytes.count - i, vl <= bytes.count - i - nl else { throw FastCGIError("truncated name-value pair") }
            pairs.append(FastCGIPair(name: Array(bytes[i..<(i + nl)]), value: Array(bytes[(i + nl)..<(i + nl + vl)])))
            i += nl + vl
        }
        return pairs
    }

    public static func decode(_ bytes: [UInt8]) throws(FastCGIError) -> [FastCGIPair] {
        var r: Result<[FastCGIPair], FastCGIError>!
        bytes.withUnsafeBytes { b in
            do throws(FastCGIError) { r = .success(try decode(b)) } catch { r = .failure(error) }
        }
        return try r.get()
    }
}
