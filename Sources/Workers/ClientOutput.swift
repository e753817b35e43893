import GatewaySystem

/// What a client connection still has to write: queued bytes, then a range of a static
/// file by sendfile (the head goes with MSG_MORE, so head and first file bytes share a
/// segment). Every worker class writes through it as far as the socket takes it; when
/// it would block, the blocking workers poll for room and the epoll worker waits for its
/// next writable event.
struct ClientOutput {
    enum Progress {
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
    private var file: OpenFile? = nil
    private var fileOffset = 0
    private var fileEnd = 0

    /// Bytes not yet written.
    var pending: Int { bytes.count - start + (fileEnd - fileOffset) }

    mutating func queue(_ more: ArraySlice<UInt8>) { bytes += more }

    /// Sends `length` bytes of `file` from `offset` after the queued bytes; the output lets
    /// go of it once they are out (or it is discarded).
    mutating func queueFile(_ file: OpenFile, offset: UInt64, length: UInt64) {
        self.file = file
        fileOffset = Int(offset)
        fileEnd = Int(offset + length)
    }

    /// Writes until everything is out or the socket is full. `fileBudget`: at most this
    /// many file bytes this call (a fast reader of a big file does not hold an event loop).
    mutating func write(to fd: FileDescriptor, fileBudget: Int = .max) -> Progress {
        while start < bytes.count {
            let n: Int?
            do { n = try file != nil ? fd.sendMore(bytes, from: start) : fd.write(bytes, from: start) } catch { return .failed }
            guard let n, n > 0 else { return .wouldBlock }
            start += n
        }
        bytes = []
        start = 0
        guard let source = file else { return .done }
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

    /// Writes `more` straight from its buffer when nothing is queued before it (no copy),
    /// queuing what the socket does not take.
    mutating func send(_ more: [UInt8], to fd: FileDescriptor) -> Progress {
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

    /// Drops what is left (the client is gone, or the connection closes).
    mutating func discard() {
        bytes = []
        start = 0
        closeFile()
    }

    private mutating func closeFile() {
        file = nil
        fileOffset = 0
        fileEnd = 0
    }
}
