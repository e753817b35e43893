/// Name-value pair coding (spec §3.4): each length is one byte when below 128, else four
/// bytes big-endian with the top bit set.
public enum FastCGINameValue {
    public static let maxLength = Int(Int32.max)

    @inline(__always) static func appendLength(_ n: Int, into out: inout [UInt8]) {
        precondition(n >= 0 && n <= maxLength, "FastCGI name or value too long")
        if n < 128 {
            out.append(UInt8(n))
        } else {
            out.append(UInt8(truncatingIfNeeded: n >> 24) | 0x80)
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
        }
    }

    public static func append<N: Collection, V: Collection>(name: N, value: V, into out: inout [UInt8])
    where N.Element == UInt8, V.Element == UInt8 {
        appendLength(name.count, into: &out)
        appendLength(value.count, into: &out)
        out.append(contentsOf: name)
        out.append(contentsOf: value)
    }

    public static func append(name: String, value: String, into out: inout [UInt8]) {
        append(name: name.utf8, value: value.utf8, into: &out)
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
