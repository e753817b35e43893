import GatewaySystem
import HTTPWire

/// The epoll worker's static files: the head goes out with the output buffer, then the
/// file's bytes by sendfile, a share per loop turn.
extension EpollWorker {
    /// A static file: the head is queued, and the file follows it by sendfile as the
    /// client takes it (`writeOutput`), a share per loop turn.
    func sendStatic(_ c: EpollClient, _ r: EpollRequest, _ file: StaticFile) {
        let whole = !r.hasBody || r.bodyDone
        if !whole { c.lingerOnClose = true }
        let keep = r.keepAlive && whole
        let reply = StaticResponse.make(request: r.head, file: file, keepAlive: keep, date: ctx.httpDate())
        r.status = reply.status
        if let body = reply.body {
            c.file = file.fd
            c.fileOffset = Int(body.offset)
            c.fileEnd = Int(body.offset + body.length)
            r.bytesSent += Int(body.length)
        } else {
            try? file.fd.close()
        }
        finishRequest(c, r, appending: reply.head, keep: keep)
    }

    func flushFiles() {
        guard !flushReady.isEmpty else { return }
        let ready = flushReady
        flushReady = []
        for c in ready where !c.closed && c.writable && c.outputPending > 0 { flushClient(c) }
    }

    /// Sends the pending static file bytes, up to `fileBytesPerTurn` this turn.
    func writeFile(_ c: EpollClient) -> Bool {
        guard let file = c.file else { return true }
        var budget = Self.fileBytesPerTurn
        while c.fileOffset < c.fileEnd && c.writable {
            if budget <= 0 {
                flushReady.append(c)
                return true
            }
            let n: Int?
            do { n = try c.fd.sendfile(from: file, offset: &c.fileOffset, count: min(c.fileEnd - c.fileOffset, budget)) } catch { return false }
            guard let n else {
                c.writable = false
                break
            }
            if n == 0 {  // the file shrank under us: the promised length cannot be kept
                ctx.logger.warning("a static file shrank while it was sent; closing the connection")
                return false
            }
            budget -= n
            setDeadline(c, Host.monotonicSeconds() + timeouts.send)
        }
        if c.fileOffset >= c.fileEnd { c.closeFile() }
        return true
    }
}
