import GatewaySystem
import HTTPWire

/// The epoll worker's side of writing to clients: queued output written as the socket
/// takes it, then the next request (keep-alive), a lingering close, or the end.
extension EpollWorker {
    func queueOutput(_ c: EpollClient, _ bytes: ArraySlice<UInt8>, flush: Bool = true) {
        c.output += bytes
        if flush { flushClient(c) }
    }

    /// Writes what is pending; when all is out, moves the connection on.
    func flushClient(_ c: EpollClient) {
        guard writeOutput(c) else { return clientGone(c) }
        guard c.outputPending == 0 else { return }
        switch c.phase {
        case .flushing:
            if let r = c.sending {
                c.sending = nil
                logAccess(c, r)
            }
            if c.keepAfterFlush { nextRequest(c) } else { closeAfterResponse(c) }
        case .upstream:
            if let e = c.request?.cgiRun {
                if e.stdoutReadable {  // it was paused for us
                    cgiReadStdout(e)
                    cgiCheckDone(e)
                }
            } else if let r = c.request, r.backendReadable, r.exchange != nil {
                driveApp(c, r)  // it was paused for us
            }
        default:
            break
        }
    }

    /// Writes while the client takes it; false if the client is gone.
    func writeOutput(_ c: EpollClient) -> Bool {
        while c.output.count > c.outputStart && c.writable {
            let n: Int?
            // A static file follows: the head waits for its first bytes (one segment).
            do { n = try c.file != nil ? c.fd.sendMore(c.output, from: c.outputStart) : c.fd.write(c.output, from: c.outputStart) } catch { return false }
            guard let n, n > 0 else {
                c.writable = false
                break
            }
            c.outputStart += n
            if c.phase == .flushing { setDeadline(c, Host.monotonicSeconds() + timeouts.send) }
        }
        if c.output.count == c.outputStart {
            c.output = []
            c.outputStart = 0
            if c.file != nil { return writeFile(c) }
        }
        return true
    }

    /// Keep-alive: back to waiting for a head. A request already buffered (pipelined)
    /// is served from the loop, after the current events.
    func nextRequest(_ c: EpollClient) {
        c.phase = .head
        c.lingerOnClose = false
        c.intake.awaitNextRequest(now: Host.monotonicSeconds(), capIdle: ctx.idleDeadline)
        setDeadline(c, c.intake.deadline)
        if !c.unconsumed.isEmpty || c.readable { runnable.append(c) }
    }

    func runReady() {
        while !runnable.isEmpty {
            let ready = runnable
            runnable = []
            for c in ready where !c.closed && c.phase == .head {
                if !c.unconsumed.isEmpty { advance(c) }
                if !c.closed && c.readable { readClient(c) }
            }
        }
    }

    func closeAfterResponse(_ c: EpollClient) {
        guard c.lingerOnClose else { return closeClient(c) }
        Socket.shutdownWrite(c.fd)
        c.phase = .lingering
        c.input = []
        c.inputStart = 0
        setDeadline(c, Host.monotonicSeconds() + Self.lingerSeconds)
        readClient(c)
    }

    /// The client reset the connection or stopped taking output while a request was in
    /// flight: the app's work is abandoned and its slot freed. Logged 499 (nginx's
    /// "client closed request"), as the blocking workers do (Outcome.loggedStatus).
    func clientGone(_ c: EpollClient) {
        if let r = c.request {
            abandonUpstream(c, r)
            r.status = 499
            r.bytesSent -= c.outputPending
            logAccess(c, r)
            ctx.requestFinished()
        }
        closeClient(c)
    }

    func closeClient(_ c: EpollClient) {
        guard !c.closed else { return }
        if let r = c.sending {
            // The response was whole on our side but the client did not take it all.
            c.sending = nil
            r.status = 499
            r.bytesSent -= c.outputPending
            logAccess(c, r)
        }
        c.closed = true
        c.closeFile()
        if let r = c.request {
            abandonUpstream(c, r)
            r.closeSpool()
            c.request = nil
        }
        try? c.fd.close()  // also leaves the epoll set
        clients[Int(c.fd.rawValue)] = nil
        openClients -= 1
        ctx.connectionsChanged(by: -1)
    }

    /// While draining: a connection with no request in progress ends at its keep-alive
    /// deadline, or sooner (WorkerContext.idleDeadline); the sweep closes it.
    func shortenIdleDeadlines() {
        for case let c? in clients where c.phase == .head && !c.intake.sawByte && c.unconsumed.isEmpty {
            c.intake.capIdleDeadline(ctx.idleDeadline)
            setDeadline(c, c.intake.deadline)
        }
    }
}
