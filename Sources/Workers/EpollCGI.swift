import GatewayConfig
import GatewaySystem
import Exchanges

/// The epoll worker's side of a CGI link (CGILink): the program's pipes are registered
/// edge-triggered and its pidfd tells when it exits; each event goes to the link. A
/// worker runs at most cgi.max_processes programs; further requests wait in `cgiQueue`
/// (503 after cgi.queue_timeout). A program whose client leaves, or that outlives
/// cgi.timeout, gets SIGTERM on its process group and SIGKILL after cgi.kill_grace; its
/// place is free only once it is reaped.
extension EpollWorker {
    var cgi: CGIConfig { ctx.config.cgi }

    /// The request (body read) asks for a place to run its program.
    func startCGI(_ c: EpollClient, _ r: EpollRequest) {
        guard ctx.cgiGate.tryAcquire() else {
            cgiQueue.append(c)
            c.phase = .queued
            c.deadline = Host.monotonicSeconds() + cgi.queueTimeout
            return
        }
        runCGI(c, r)
    }

    func runCGI(_ c: EpollClient, _ r: EpollRequest) {
        guard let script = r.cgi, let link = CGILink.start(ctx: ctx, record: r, script: script, body: r.body, remote: c.remote,
                                                           local: c.local, sink: r) else {
            ctx.cgiGate.release()
            startQueuedCGI()
            return exchangeEnded(c, .failed(502, []))
        }
        r.cgiLink = link
        c.phase = .upstream
        c.deadline = link.deadline
        for (fd, writable) in link.watched {
            nextCGIGeneration = (nextCGIGeneration &+ 1) & Self.serialMask
            let events: Epoll.Events = fd == link.run.child.exitWatch ? [.readable] : writable ? [.writable, .edgeTriggered] : [.readable, .edgeTriggered]
            do { try epoll.add(fd, events, data: Self.cgiTag | UInt64(nextCGIGeneration) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))) } catch {
                link.output.fail("epoll: \(error)")
                break
            }
            cgiRuns[fd.rawValue] = (link, c, nextCGIGeneration)
            link.registered.append(fd.rawValue)
        }
        cgiCheckDone(link, c)
    }

    /// An event on a program's pipe or pidfd.
    func cgiEvent(_ data: UInt64) {
        let fd = Int32(truncatingIfNeeded: data & 0xffff_ffff)
        guard let (link, c, generation) = cgiRuns[fd], generation == UInt32(truncatingIfNeeded: data >> 32) & Self.serialMask else { return }
        guard !link.abandoned else {
            // Ended for a client that left: only its exit matters now.
            if link.run.reapIfExited() { sweepDyingCGI(Host.monotonicSeconds()) }
            return
        }
        link.event(fd, buffer: &scratch)
        cgiCheckDone(link, c)
    }

    /// After the link's events: the client has left, the program is over, or it goes on
    /// (with the client's deadline while the client is behind).
    func cgiCheckDone(_ link: CGILink, _ c: EpollClient) {
        guard !c.closed, let r = c.request, r.cgiLink === link else { return }
        if link.output.clientGone { return clientGone(c) }
        if link.output.failure != nil && !link.run.exited {
            abandonCGI(r)  // it is ended in the background; the client gets its answer now
            return exchangeEnded(c, link.end())
        }
        guard link.finished else {
            if c.outputPending > 0 { c.deadline = min(link.deadline, Host.monotonicSeconds() + timeouts.send) }
            return
        }
        r.cgiLink = nil
        retire(link)
        startQueuedCGI()
        exchangeEnded(c, link.end())
    }

    /// The client has gone, or the program failed: SIGTERM now, SIGKILL after the grace
    /// time (from the sweep), the place freed once it is reaped.
    func abandonCGI(_ r: EpollRequest) {
        guard let link = r.cgiLink else { return }
        r.cgiLink = nil
        link.abandon(now: Host.monotonicSeconds())
        cgiDying.append(link)
    }

    /// Runs of gone clients: SIGKILL after the grace time; reaped ones free their place.
    func sweepDyingCGI(_ now: Double) {
        guard !cgiDying.isEmpty else { return }
        for link in cgiDying {
            link.tick(now: now)
            link.run.reapIfExited()
        }
        let done = cgiDying.filter { $0.run.exited }
        guard !done.isEmpty else { return }
        cgiDying.removeAll { $0.run.exited }
        done.forEach(retire)
        startQueuedCGI()
    }

    /// A program is over and reaped: its registrations go, and its place is free.
    func retire(_ link: CGILink) {
        for fd in link.registered where cgiRuns[fd]?.link === link { cgiRuns[fd] = nil }
        link.registered = []
        link.run.finish()
        ctx.cgiGate.release()
    }

    /// A place is free: the oldest waiting request takes it.
    func startQueuedCGI() {
        while let c = cgiQueue.first {
            guard !c.closed, c.phase == .queued, let r = c.request, r.cgi != nil, r.cgiLink == nil else {
                cgiQueue.removeFirst()
                continue
            }
            guard ctx.cgiGate.tryAcquire() else { return }
            cgiQueue.removeFirst()
            runCGI(c, r)
        }
    }

    /// cgi.timeout passed (SIGTERM), then the grace time (SIGKILL); or the client stopped
    /// taking output for timeouts.send.
    func cgiTimedOut(_ c: EpollClient, _ link: CGILink, _ now: Double) {
        if now < link.deadline {
            ctx.logger.info("client took no output for \(timeouts.send) s; ending the CGI program", metadata: link.meta)
            return clientGone(c)
        }
        link.tick(now: now)
        c.deadline = now + min(cgi.killGrace, 1)
    }

    func cgiQueueTimedOut(_ c: EpollClient, _ r: EpollRequest) {
        cgiQueue.removeAll { $0 === c }
        exchangeEnded(c, ctx.cgiPlacesBusy(["request_id": "\(r.id)", "cgi": "\(r.cgi?.scriptName ?? "-")"]))
    }

    /// The worker is exiting: no program outlives it.
    func endAllCGI() {
        for case let c? in clients { c.request?.cgiLink?.run.finish() }
        for link in cgiDying { link.run.finish() }
        cgiDying = []
    }
}

/// The epoll worker's request as its CGI link's sink.
extension EpollRequest: ClientSink {}
