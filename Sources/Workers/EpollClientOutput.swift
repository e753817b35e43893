import GatewaySystem
import HTTPWire

/// The epoll worker's side of writing to clients: queued output and static files
/// written as the socket takes them, lingering closes, and the end of a connection.
extension EpollWorker {
    /// Writes what is pending; when all is out, what waited for it goes on.
    func flushClient(_ c: EpollClient) {
        guard writeOutput(c) else { return clientGone(c) }
        guard c.outputPending == 0 else { return }
        switch c.phase {
        case .session:
            drive(c)  // a flush step waits for this
        case .upstream:
            if let link = c.request?.cgiLink {
                if link.stdoutReadable {  // it was paused for us
                    link.relay(&scratch)
                    cgiCheckDone(link, c)
                }
            } else if let r = c.request, r.link?.readable == true {
                driveApp(c, r)  // it was paused for us
            }
        default:
            break
        }
    }

    /// Writes while the client takes it; false if the client is gone.
    func writeOutput(_ c: EpollClient) -> Bool {
        if c.stream != nil { return writeStream(c) }
        let before = c.outputPending
        guard c.writable, before > 0 else { return true }
        guard progressed(c, c.out.write(to: c.fd, fileBudget: Self.fileBytesPerTurn)) else { return false }
        // Progress: the send timeout starts again (an exchange keeps its own deadline).
        if c.phase == .session && c.outputPending < before { c.deadline = Host.monotonicSeconds() + timeouts.send }
        return true
    }

    /// What a write did to the connection's state; false if the client is gone.
    func progressed(_ c: EpollClient, _ p: ClientOutput.Progress) -> Bool {
        switch p {
        case .done: break
        case .wouldBlock: c.writable = false
        case .budgetSpent: flushReady.append(c)
        case .failed: return false
        case .fileShrank:
            ctx.logger.warning("a static file shrank while it was sent; closing the connection")
            return false
        }
        return true
    }

    /// Connections still writable after their share of a static file last turn.
    func flushFiles() {
        guard !flushReady.isEmpty else { return }
        let ready = flushReady
        flushReady = []
        for c in ready where !c.closed && c.writable && c.outputPending > 0 { flushClient(c) }
    }

    /// Connections with pipelined requests left over from their last turn.
    func runReady() {
        while !runnable.isEmpty {
            let ready = runnable
            runnable = []
            for c in ready where !c.closed && c.phase == .session { drive(c) }
        }
    }

    func startLingering(_ c: EpollClient) {
        if c.stream != nil { return closeClient(c) }  // a stream has no socket of its own
        Socket.shutdownWrite(c.fd)
        c.phase = .lingering
        c.deadline = Host.monotonicSeconds() + Self.lingerSeconds
        drainLingering(c)
    }

    /// Reads and drops what a lingering client still sends, until it closes.
    func drainLingering(_ c: EpollClient) {
        while c.readable && !c.closed {
            let n: Int?
            do { n = try c.fd.read(into: &scratch, from: 0) } catch { return closeClient(c) }
            guard let n else {
                c.readable = false
                return
            }
            if n == 0 { return closeClient(c) }
        }
    }

    /// The client reset the connection or stopped taking output while a request was in
    /// flight: the app's work is abandoned and its slot freed; the session logs it 499
    /// (nginx's "client closed request"), as in every worker class.
    func clientGone(_ c: EpollClient) {
        if let r = c.request { abandonUpstream(c, r) }
        c.phase = .session
        c.session.clientGone(unsent: c.outputPending)
        c.out.discard()
        drive(c)
    }

    func closeClient(_ c: EpollClient) {
        guard !c.closed else { return }
        if let link = c.stream { return closeStream(c, link) }
        c.closed = true
        if let h2 = c.h2 {
            for s in Array(h2.streams.values) where !s.closed { closeClient(s) }
            h2.streams = [:]
        }
        c.out.discard()
        c.out.closeTLS(to: c.fd)
        if let r = c.request {
            abandonUpstream(c, r)
            r.closeBody()
        }
        try? c.fd.close()  // also leaves the epoll set
        clients[Int(c.fd.rawValue)] = nil
        openClients -= 1
        ctx.connectionsChanged(by: -1)
    }

    /// While draining: a connection with no request in progress ends at its keep-alive
    /// deadline, or sooner (WorkerContext.idleDeadline); the sweep closes it.
    func shortenIdleDeadlines() {
        for case let c? in clients where c.phase == .session && c.session.isIdle {
            c.session.capIdle(ctx.idleDeadline)
            c.deadline = c.session.deadline
        }
    }
}
