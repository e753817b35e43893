/// What one parse step produced.
public enum HTTPRequestEvent: Sendable, Equatable {
    /// A complete, validated request head.
    case head(HTTPRequestHead)
    /// Body bytes: this range of the input just passed in (already de-chunked).
    case body(Range<Int>)
    /// The message is complete; trailer fields of a chunked body, if any.
    case end(trailers: HTTPHeaders)
}

/// The result of one call to `HTTPRequestParser.parse`: drop `consumed` bytes from the
/// front of the buffer; `event == nil` means more input is needed.
public struct HTTPParseStep: Sendable, Equatable {
    public var consumed: Int
    public var event: HTTPRequestEvent?
}

/// A strict, incremental HTTP/1.1 request parser (RFC 9112), sans-IO.
///
/// The caller owns the buffer. It passes the bytes not yet consumed, drops `consumed`
/// bytes after each step, and calls again until the step has no event (need more bytes).
/// Bytes after one message stay in the buffer for the next (pipelining); after `.end`
/// the parser expects a new request head. Any thrown `HTTPParseError` is final.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable, Equatable {
        /// Looking for the end of a head; `scanned` bytes were already searched.
        case head(scanned: Int)
        case endPending
        case fixedBody(remaining: UInt64)
        case chunkSizeLine
        case chunkData(remaining: UInt64)
        case chunkDataCRLF
        case trailers(scanned: Int)
        case failed
    }

    public let limits: HTTPLimits
    var state: State = .head(scanned: 0)
    var chunkedBodySize: UInt64 = 0
    /// The head being scanned has finished its request line.
    var headSawLF = false

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// True between messages: EOF here is a clean close, elsewhere a truncated request.
    public var isIdle: Bool { state == .head(scanned: 0) }

    /// A request body was left unread (or failed): closing now would leave the client's
    /// bytes in our socket, and the kernel would answer them with a reset.
    public var leftBodyUnread: Bool {
        switch state {
        case .head, .endPending: return false
        default: return true
        }
    }

    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParseStep {
        do {
            return try step(input)
        } catch {
            state = .failed
            throw error
        }
    }

    /// Convenience for callers holding an array.
    public mutating func parse(_ input: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPParseStep {
        var result: Result<HTTPParseStep, HTTPParseError>!
        input.withUnsafeBytes { buf in
            do throws(HTTPParseError) { result = .success(try parse(buf)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    private mutating func step(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParseStep {
        switch state {
        case .head(let scanned):
            return try parseHead(input, scanned: scanned)
        case .endPending:
            state = .head(scanned: 0)
            return HTTPParseStep(consumed: 0, event: .end(trailers: HTTPHeaders()))
        case .fixedBody(let remaining):
            guard !input.isEmpty else { return HTTPParseStep(consumed: 0, event: nil) }
            let n = Int(min(UInt64(input.count), remaining))
            state = remaining == UInt64(n) ? .endPending : .fixedBody(remaining: remaining - UInt64(n))
            return HTTPParseStep(consumed: n, event: .body(0..<n))
        case .chunkSizeLine:
            return try parseChunkSizeLine(input)
        case .chunkData(let remaining):
            guard !input.isEmpty else { return HTTPParseStep(consumed: 0, event: nil) }
            let n = Int(min(UInt64(input.count), remaining))
            state = remaining == UInt64(n) ? .chunkDataCRLF : .chunkData(remaining: remaining - UInt64(n))
            return HTTPParseStep(consumed: n, event: .body(0..<n))
        case .chunkDataCRLF:
            guard input.count >= 2 else {
                if input.count == 1 && input[0] != ASCII.cr { throw .bad("chunk data not followed by CRLF") }
                return HTTPParseStep(consumed: 0, event: nil)
            }
            guard input[0] == ASCII.cr && input[1] == ASCII.lf else { throw .bad("chunk data not followed by CRLF") }
            state = .chunkSizeLine
            return HTTPParseStep(consumed: 2, event: nil)
        case .trailers(let scanned):
            return try parseTrailers(input, scanned: scanned)
        case .failed:
            throw HTTPParseError(400, "parser used after an error")
        }
    }

    // MARK: - Head

    private mutating func parseHead(_ input: UnsafeRawBufferPointer, scanned: Int) throws(HTTPParseError) -> HTTPParseStep {
        // RFC 9112 §2.2: ignore empty lines before the request line.
        if scanned == 0 {
            var skip = 0
            while skip < input.count {
                if input[skip] == ASCII.lf { skip += 1; continue }
                if input[skip] == ASCII.cr {
                    if skip + 1 == input.count { return HTTPParseStep(consumed: skip, event: nil) }
                    if input[skip + 1] == ASCII.lf { skip += 2; continue }
                    throw .bad("bare CR before the request line")
                }
                break
            }
            if skip > 0 || input.isEmpty { return HTTPParseStep(consumed: skip, event: nil) }
        }
        guard let end = try findEndOfHead(input, from: scanned) else {
            return HTTPParseStep(consumed: 0, event: nil)
        }
        let head = try HeadReader(limits: limits).readHead(UnsafeRawBufferPointer(rebasing: input[0..<end]))
        switch head.framing {
        case .none: state = .endPending
        case .contentLength(0): state = .endPending
        case .contentLength(let n): state = .fixedBody(remaining: n)
        case .chunked: state = .chunkSizeLine; chunkedBodySize = 0
        }
        return HTTPParseStep(consumed: end, event: .head(head))
    }

    /// Finds the byte after the blank line ending the head, or nil if it is not there yet
    /// (remembering how far it looked, so byte-at-a-time input stays linear).
    /// Bare CR and the size limits are checked here, in byte order, so the outcome never
    /// depends on how the input was split into reads (the fuzzer checks this).
    private mutating func findEndOfHead(_ input: UnsafeRawBufferPointer, from scanned: Int) throws(HTTPParseError) -> Int? {
        var i = scanned
        let n = input.count
        let maxHead = limits.maxHeadSize, maxLine = limits.maxRequestLine
        if scanned == 0 { headSawLF = false }
        var sawLF = headSawLF
        defer { headSawLF = sawLF }
        while i < n {
            // Skip what is neither CR nor LF, up to the first limit that applies (in
            // locals: the loop is most of the head's cost).
            let bound = min(n, maxHead, sawLF ? n : maxLine)
            while i < bound {
                let b = input[i]
                if b == ASCII.lf || b == ASCII.cr { break }
                i += 1
            }
            if i == n { break }
            if i >= maxHead {
                throw HTTPParseError(431, "request head larger than \(maxHead) bytes")
            }
            let b = input[i]
            if b == ASCII.lf {
                sawLF = true
                if i + 1 >= n { break }
                if input[i + 1] == ASCII.lf { return i + 2 }
                if input[i + 1] == ASCII.cr {
                    if i + 2 >= n { break }
                    if input[i + 2] == ASCII.lf { return i + 3 }
                }
            } else if b == ASCII.cr {
                if i + 1 >= n { break }
                if input[i + 1] != ASCII.lf { throw .bad("bare CR in head") }
            } else {
                throw HTTPParseError(414, "request line longer than \(maxLine) bytes")  // the bound was the line's
            }
            i += 1
        }
        state = .head(scanned: i)
        return nil
    }

    // MARK: - Chunked body

    private mutating func parseChunkSizeLine(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParseStep {
        let maxLine = 16 + limits.maxChunkExtension + 2
        var lf: Int? = nil
        for i in 0..<min(input.count, maxLine + 1) where input[i] == ASCII.lf { lf = i; break }
        guard let lf else {
            if input.count > maxLine { throw .bad("chunk-size line too long (extension over \(limits.maxChunkExtension) bytes?)") }
            return HTTPParseStep(consumed: 0, event: nil)
        }
        guard lf > 0 && input[lf - 1] == ASCII.cr else { throw .bad("bare LF in chunk framing") }
        let line = UnsafeRawBufferPointer(rebasing: input[0..<(lf - 1)])
        var size: UInt64 = 0
        var i = 0
        while i < line.count, let h = hexValue(line[i]) {
            guard size <= (UInt64.max >> 4) else { throw .bad("chunk size overflows") }
            size = size << 4 | h
            i += 1
        }
        guard i > 0 else { throw .bad("chunk size is not hexadecimal") }
        try validateChunkExtension(UnsafeRawBufferPointer(rebasing: line[i...]))
        let (total, overflow) = chunkedBodySize.addingReportingOverflow(size)
        guard !overflow && total <= limits.maxBodySize else {
            throw HTTPParseError(413, "chunked body larger than \(limits.maxBodySize) bytes")
        }
        chunkedBodySize = total
        state = size == 0 ? .trailers(scanned: 0) : .chunkData(remaining: size)
        return HTTPParseStep(consumed: lf + 1, event: nil)
    }

    /// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string.
    private func validateChunkExtension(_ ext: UnsafeRawBufferPointer) throws(HTTPParseError) {
        guard ext.count <= limits.maxChunkExtension else {
            throw .bad("chunk extension longer than \(limits.maxChunkExtension) bytes")
        }
        var i = 0
        func skipBWS() { while i < ext.count && isOWS(ext[i]) { i += 1 } }
        func token() -> Bool {
            let s = i
            while i < ext.count && isTokenChar(ext[i]) { i += 1 }
            return i > s
        }
        while true {
            // BWS is allowed only before ";" (RFC 9112 §7.1.1): "5 \r\n" is refused,
            // as a peer that ends the size at the space could read it differently.
            let ws = i
            skipBWS()
            if i == ext.count {
                if i > ws { throw .bad("whitespace after chunk size or extension") }
                return
            }
            guard ext[i] == ASCII.semicolon else { throw .bad("invalid byte after chunk size") }
            i += 1
            skipBWS()
            guard token() else { throw .bad("invalid chunk extension name") }
            skipBWS()
            guard i < ext.count && ext[i] == ASCII.equals else { continue }
            i += 1
            skipBWS()
            if i < ext.count && ext[i] == ASCII.quote {
                i += 1
                var closed = false
                while i < ext.count {
                    let b = ext[i]
                    if b == ASCII.quote { closed = true; i += 1; break }
                    if b == ASCII.backslash {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ): never CR, LF or NUL.
                        guard i + 1 < ext.count else { break }
                        let e = ext[i + 1]
                        guard e == ASCII.htab || (e >= 0x20 && e != 0x7F) else { throw .bad("control byte escaped in chunk extension") }
                        i += 2
                        continue
                    }
                    guard b == ASCII.htab || (b >= 0x20 && b != 0x7F) else { throw .bad("control byte in chunk extension") }
                    i += 1
                }
                guard closed, i <= ext.count else { throw .bad("unterminated quoted string in chunk extension") }
            } else if !token() {
                throw .bad("invalid chunk extension value")
            }
        }
    }

    private mutating func parseTrailers(_ input: UnsafeRawBufferPointer, scanned: Int) throws(HTTPParseError) -> HTTPParseStep {
        // Inside chunk framing every line must end in CRLF.
        var i = scanned
        while i < input.count {
            if input[i] == ASCII.lf {
                guard i > 0 && input[i - 1] == ASCII.cr else { throw .bad("bare LF in chunked trailer section") }
                // Done at an empty line: CRLF at the start, or CRLF right after another CRLF.
                if i == 1 || (i >= 3 && input[i - 2] == ASCII.lf && input[i - 3] == ASCII.cr) {
                    let end = i + 1
                    let section = UnsafeRawBufferPointer(rebasing: input[0..<end])
                    let trailers = try HeadReader(limits: limits).readFields(section, startingAt: 0)
                    state = .head(scanned: 0)
                    return HTTPParseStep(consumed: end, event: .end(trailers: trailers))
                }
            }
            i += 1
            if i > limits.maxHeadSize { throw HTTPParseError(431, "trailer section larger than \(limits.maxHeadSize) bytes") }
        }
        state = .trailers(scanned: i)
        return HTTPParseStep(consumed: 0, event: nil)
    }
}
