import ContentCoding
import GatewaySystem
import HTTPWire
import TLS

/// What a client connection still has to write: queued bytes, then a range of a static
/// file by sendfile (the head goes with MSG_MORE, so head and first file bytes share a
/// segment). Every worker class writes through it as far as the socket takes it; when
/// it would block, the blocking workers poll for room and the epoll worker waits for its
/// next writable event.
///
/// On a TLS connection (`tls`), what is queued is gathered and encrypted when it is
/// written (a response's head and body in one record, not one each), and a file's range
/// is read and encrypted a piece at a time (no sendfile: the kernel would send it in the
/// clear), each piece once the one before it is out. A file sent gzip-coded goes the
/// same way, each piece compressed and chunked (then encrypted, on TLS).
struct ClientOutput {
    enum Progress: Error {
        /// Everything is out.
        case done
        /// The socket is full.
        case wouldBlock
        /// `fileBudget` bytes of the file went out this call; the rest waits for a turn.
        case budgetSpent
        /// The client is gone.
        case failed
        /// The static file shrank while it was sent: the promised length cannot be kept.
        case fileShrank
    }

    /// An exchange stops reading its app or program while the client has this much unsent.
    static let highWater = 256 * 1024

    private var bytes: [UInt8] = []
    private var start = 0
    /// The connection's TLS, if it speaks it.
    var tls: TLSConnection? = nil
    /// Plaintext pieces of a file on a TLS connection.
    static let tlsFilePiece = 65536
    /// TLS: plaintext queued since the last write, encrypted in one go when written.
    private var plain: [UInt8] = []
    private var file: OpenFile? = nil
    private var fileOffset = 0
    private var fileEnd = 0
    /// The file's range is sent gzip-coded and chunked through this.
    private var fileCoder: GzipEncoder? = nil

    /// Bytes not yet written.
    var pending: Int { bytes.count - start + plain.count + (fileEnd - fileOffset) }

    mutating func queue(_ more: ArraySlice<UInt8>) {
        if tls == nil { bytes += more } else { plain += more }
    }

    /// TLS: what was queued, encrypted onto the bytes to write.
    private mutating func seal() {
        // Before the handshake's end, plaintext waits (OpenSSL would refuse it).
        guard let tls, !plain.isEmpty, tls.handshakeDone else { return }
        if start == bytes.count { bytes.removeAll(keepingCapacity: true); start = 0 }
        tls.write(plain[...])
        tls.takeOutput(into: &bytes)
        plain.removeAll(keepingCapacity: plain.count <= 65536)
    }

    /// TLS records the connection made on its own (the handshake, session tickets, a
    /// close_notify), queued to go out.
    mutating func pullTLS() {
        guard let tls, tls.pendingOutput > 0 else { return }
        if start == bytes.count { bytes.removeAll(keepingCapacity: true); start = 0 }
        tls.takeOutput(into: &bytes)
    }

    /// Sends `length` bytes of `file` from `offset` after the queued bytes; the output lets
    /// go of it once they are out (or it is discarded).
    mutating func queueFile(_ file: OpenFile, offset: UInt64, length: UInt64, gzip: GzipEncoder? = nil) {
        self.file = file
        fileOffset = Int(offset)
        fileEnd = Int(offset + length)
        fileCoder = gzip
    }

    /// Writes until everything is out or the socket is full. `fileBudget`: at most this
    /// many file bytes this call (a fast reader of a big file does not hold an event loop).
    mutating func write(to fd: FileDescriptor, fileBudget: Int = .max) -> Progress {
        seal()
        while start < bytes.count {
            let n: Int?
            do { n = try file != nil ? fd.sendMore(bytes, from: start) : fd.write(bytes, from: start) } catch { return .failed }
            guard let n, n > 0 else { return .wouldBlock }
            start += n
        }
        bytes = []
        start = 0
        guard let source = file else { return .done }
        if tls != nil || fileCoder != nil { return writeFilePieces(source, to: fd, budget: fileBudget) }
        var budget = fileBudget
        while fileOffset < fileEnd {
            if budget <= 0 { return .budgetSpent }
            let n: Int?
            do { n = try fd.sendfile(from: source.fd, offset: &fileOffset, count: min(fileEnd - fileOffset, budget, 1 << 20)) } catch { return .failed }
            guard let n else { return .wouldBlock }
            if n == 0 { return .fileShrank }
            budget -= n
        }
        closeFile()
        return .done
    }

    /// A file's range on a TLS connection, or gzip-coded: read, code, encrypt and write a
    /// piece at a time.
    private mutating func writeFilePieces(_ source: OpenFile, to fd: FileDescriptor, budget fileBudget: Int) -> Progress {
        var budget = fileBudget
        while fileOffset < fileEnd {
            if budget <= 0 { return .budgetSpent }
            let before = fileOffset
            switch nextFilePiece(source, max: min(Self.tlsFilePiece, budget)) {
            case .success(let piece): emit(piece[...])
            case .failure(let p): return p
            }
            budget -= fileOffset - before
            while start < bytes.count {
                let w: Int?
                do { w = try fd.write(bytes, from: start) } catch { return .failed }
                guard let w, w > 0 else { return .wouldBlock }
                start += w
            }
            bytes = []
            start = 0
        }
        closeFile()
        return .done
    }

    /// The next piece of the file's range as it goes out before any TLS: read, and
    /// gzip-coded and chunked when the response is.
    private mutating func nextFilePiece(_ source: OpenFile, max: Int) -> Result<[UInt8], Progress> {
        var piece = [UInt8](repeating: 0, count: Swift.max(1, min(max, fileEnd - fileOffset)))
        let n: Int
        do { n = try source.fd.pread(into: &piece, at: fileOffset) } catch { return .failure(.failed) }
        if n == 0 { return .failure(.fileShrank) }
        fileOffset += n
        guard let coder = fileCoder else {
            if n < piece.count { piece.removeLast(piece.count - n) }
            return .success(piece)
        }
        var coded: [UInt8] = []
        coder.compress(piece[0..<n], flush: false, into: &coded)
        if fileOffset == fileEnd { coder.finish(into: &coded) }
        var framed: [UInt8] = []
        if !coded.isEmpty { coded.withUnsafeBytes { HTTPChunkedEncoder.appendChunk($0, into: &framed) } }
        if fileOffset == fileEnd { HTTPChunkedEncoder.appendEnd(into: &framed) }
        return .success(framed)
    }

    /// An HTTP/2 stream's output: up to about `max` bytes of what is queued and of the
    /// file's range (read and coded as for TLS), taken out for the stream to frame.
    mutating func take(max: Int) -> Result<[UInt8], Progress> {
        var out: [UInt8] = []
        if start < bytes.count {
            let n = min(max, bytes.count - start)
            out += bytes[start..<(start + n)]
            start += n
            if start == bytes.count { bytes = []; start = 0 }
        }
        while out.count < max, let source = file {
            guard fileOffset < fileEnd else { closeFile(); break }
            switch nextFilePiece(source, max: min(Self.tlsFilePiece, max - out.count)) {
            case .success(let piece): out += piece
            case .failure(let p): return .failure(p)
            }
        }
        if let _ = file, fileOffset >= fileEnd { closeFile() }
        return .success(out)
    }

    /// A piece of a file's range onto the bytes to write (sealed first on TLS).
    private mutating func emit(_ piece: ArraySlice<UInt8>) {
        if let tls {
            tls.write(piece)
            tls.takeOutput(into: &bytes)
        } else {
            bytes += piece
        }
    }

    /// Writes `more` straight from its buffer when nothing is queued before it (no copy),
    /// queuing what the socket does not take.
    mutating func send(_ more: [UInt8], to fd: FileDescriptor) -> Progress {
        if tls != nil {
            queue(more[...])
            return write(to: fd)
        }
        guard pending == 0 else {
            queue(more[...])
            return write(to: fd)
        }
        var sent = 0
        while sent < more.count {
            do {
                guard let n = try fd.write(more, from: sent), n > 0 else {
                    queue(more[sent...])
                    return .wouldBlock
                }
                sent += n
            } catch {
                return .failed
            }
        }
        return .done
    }

    /// A TLS connection's close_notify, if the socket takes it now (the connection closes).
    mutating func closeTLS(to fd: FileDescriptor) {
        guard let tls else { return }
        tls.close()
        pullTLS()
        _ = write(to: fd)
    }

    /// Drops what is left (the client is gone, or the connection closes).
    mutating func discard() {
        bytes = []
        plain = []
        start = 0
        closeFile()
    }

    private mutating func closeFile() {
        file = nil
        fileCoder = nil
        fileOffset = 0
        fileEnd = 0
    }
}
