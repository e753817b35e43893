/// Writes the records a web server sends to a FastCGI application. Every function appends
/// to a caller-owned buffer, so one request's records can go out in a single write.
public enum FastCGIEncoder {
    /// One record: header, content, zero padding to a multiple of 8.
    public static func appendRecord(_ type: FastCGIRecordType, requestID: UInt16,
                                    content: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        precondition(content.count <= FastCGI.maxContentLength)
        appendHeader(type, requestID: requestID, contentLength: content.count, into: &out)
        out.append(contentsOf: content)
        appendPadding(for: content.count, into: &out)
    }

    /// The 8-byte record header (with paddingLength for `contentLength`); the caller writes
    /// the content and then `appendPadding`. Lets a body be sent straight from its buffer.
    public static func appendHeader(_ type: FastCGIRecordType, requestID: UInt16, contentLength: Int, into out: inout [UInt8]) {
        out.append(FastCGI.version)
        out.append(type.rawValue)
        out.append(UInt8(truncatingIfNeeded: requestID >> 8))
        out.append(UInt8(truncatingIfNeeded: requestID))
        out.append(UInt8(truncatingIfNeeded: contentLength >> 8))
        out.append(UInt8(truncatingIfNeeded: contentLength))
        out.append(UInt8(FastCGI.padding(for: contentLength)))
        out.append(0)
    }

    public static func appendPadding(for contentLength: Int, into out: inout [UInt8]) {
        let p = FastCGI.padding(for: contentLength)
        if p > 0 { out.append(contentsOf: repeatElement(0, count: p)) }
    }

    public static func appendBeginRequest(requestID: UInt16, role: FastCGIRole = .responder,
                                          keepConnection: Bool, into out: inout [UInt8]) {
        let body: [UInt8] = [UInt8(role.rawValue >> 8), UInt8(role.rawValue & 0xFF),
                             keepConnection ? FastCGI.keepConnectionFlag : 0, 0, 0, 0, 0, 0]
        body.withUnsafeBytes { appendRecord(.beginRequest, requestID: requestID, content: $0, into: &out) }
    }

    public static func appendAbortRequest(requestID: UInt16, into out: inout [UInt8]) {
        appendRecord(.abortRequest, requestID: requestID, content: UnsafeRawBufferPointer(start: nil, count: 0), into: &out)
    }

    /// Stream data split into records of at most 65535 bytes. Empty input writes nothing:
    /// an empty record would close the stream (use `appendEndOfStream`).
    public static func appendStream(_ type: FastCGIRecordType, requestID: UInt16,
                                    bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = min(FastCGI.maxContentLength, bytes.count - offset)
            appendRecord(type, requestID: requestID, content: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]), into: &out)
            offset += n
        }
    }

    public static func appendEndOfStream(_ type: FastCGIRecordType, requestID: UInt16, into out: inout [UInt8]) {
        appendHeader(type, requestID: requestID, contentLength: 0, into: &out)
    }

    public static func appendStdin(requestID: UInt16, bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        appendStream(.stdin, requestID: requestID, bytes: bytes, into: &out)
    }

    /// The whole PARAMS stream: the pairs, split into records, then the empty record.
    public static func appendParams(requestID: UInt16, _ pairs: [FastCGIPair], into out: inout [UInt8]) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(pairs.reduce(0) { $0 + $1.name.count + $1.value.count + 8 })
        for p in pairs { FastCGINameValue.append(name: p.name, value: p.value, into: &encoded) }
        encoded.withUnsafeBytes { appendStream(.params, requestID: requestID, bytes: $0, into: &out) }
        appendEndOfStream(.params, requestID: requestID, into: &out)
    }

    /// The whole PARAMS stream from name-value Strings, encoded straight into `out`: one
    /// record (the usual case, under 64 KiB) needs no intermediate buffer and no array
    /// per name or value.
    /// `decimals`: pairs that follow `pairs` in the same stream (numbers known only at
    /// send time), written as digits.
    public static func appendParams(requestID: UInt16, strings pairs: [(name: String, value: String)],
                                    decimals: [FastCGINameValue.DecimalPair] = [], into out: inout [UInt8]) {
        var total = 0
        for p in pairs { total += FastCGINameValue.encodedSize(name: p.name, value: p.value) }
        for d in decimals { total += d.encodedSize }
        if total > FastCGI.maxContentLength {
            var encoded = [UInt8](repeating: 0, count: total)
            var at = 0
            encoded.withUnsafeMutableBufferPointer { buffer in
                for p in pairs { at = FastCGINameValue.write(name: p.name, value: p.value, into: buffer, at: at) }
                for d in decimals { at = d.write(into: buffer, at: at) }
            }
            encoded.withUnsafeBytes { appendStream(.params, requestID: requestID, bytes: $0, into: &out) }
        } else if total > 0 {
            out.reserveCapacity(out.count + total + 24)
            appendHeader(.params, requestID: requestID, contentLength: total, into: &out)
            // Sized once, then written through one pointer: an Array append per name and
            // value was the largest part of encoding them.
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: total))
            out.withUnsafeMutableBufferPointer { buffer in
                var at = start
                for p in pairs { at = FastCGINameValue.write(name: p.name, value: p.value, into: buffer, at: at) }
                for d in decimals { at = d.write(into: buffer, at: at) }
            }
            appendPadding(for: total, into: &out)
        }
        appendEndOfStream(.params, requestID: requestID, into: &out)
    }

    /// A management query, e.g. FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS.
    public static func appendGetValues(_ names: [String], into out: inout [UInt8]) {
        var encoded: [UInt8] = []
        for n in names { FastCGINameValue.append(name: n, value: "", into: &encoded) }
        encoded.withUnsafeBytes { appendRecord(.getValues, requestID: FastCGI.managementRequestID, content: $0, into: &out) }
    }
}
