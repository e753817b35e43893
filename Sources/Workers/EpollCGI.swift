import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// One CGI program run by the epoll worker, as the loop sees it.
final class EpollCGIRun {
    let run: CGIRun
    /// The client it answers; nil once the client has gone (the program is being ended).
    var client: EpollClient?
    /// What its output means (the same CGIOutput the blocking runner keeps).
    var output: CGIOutput
    let deadline: Double
    /// Its registered fds (pipes and pidfd), to forget them at the end.
    var fds: [Int32] = []
    var stdoutReadable = false

    init(run: CGIRun, client: EpollClient, relay: CGIResponseRelay, deadline: Double) {
        self.run = run
        self.client = client
        self.output = CGIOutput(relay: relay)
        self.deadline = deadline
    }
}

/// The epoll worker's CGI runner: the program's pipes are non-blocking and registered
/// edge-triggered in the loop, its pidfd tells when it exits; stdout is read only while
/// the client has less than `outputHighWater` unsent. A worker runs at most
/// cgi.max_processes programs; further requests wait in `cgiQueue` (503 after
/// cgi.queue_timeout). A program whose client leaves, or that outlives cgi.timeout, gets
/// SIGTERM on its process group and SIGKILL after cgi.kill_grace; its place is free only
/// once it is reaped.
extension EpollWorker {
    var cgi: CGIConfig { ctx.config.cgi }

    /// The request (body read) asks for a place to run its program.
    func startCGI(_ c: EpollClient, _ r: EpollRequest) {
        guard r.cgi != nil else { return exchangeEnded(c, .failed(500, [])) }
        guard ctx.cgiGate.tryAcquire() else {
            cgiQueue.append(c)
            c.phase = .queued
            setDeadline(c, Host.monotonicSeconds() + cgi.queueTimeout)
            return
        }
        runCGI(c, r)
    }

    func runCGI(_ c: EpollClient, _ r: EpollRequest) {
        guard let script = r.cgi else { return exchangeEnded(c, .failed(500, [])) }
        let now = Host.monotonicSeconds()
        let request = CGIRunSetup.requestHead(r.head, target: r.target)
        let env = CGIRunSetup.environment(ctx: ctx, script: script, head: request, remote: c.remote, local: c.local,
                                          contentLength: r.bodyLengthKnown ? r.body.length : nil)
        let body = r.redirected ? BufferedBody() : r.body
        let run: CGIRun
        do { run = try CGIRun.start(script, environment: env, body: body) } catch {
            ctx.cgiGate.release()
            startQueuedCGI()
            ctx.log([CGINotes.cannotStart(script.program, error)], cgiMeta(r))
            return exchangeEnded(c, .failed(502, []))
        }
        let relay = CGIResponseRelay(request: request, nph: script.nph, maxHeadSize: ctx.config.limits.maxResponseHead, keepAlive: r.keepAlive)
        let e = EpollCGIRun(run: run, client: c, relay: relay, deadline: now + cgi.timeout)
        r.cgiRun = e
        r.upstreamStart = now
        c.phase = .upstream
        setDeadline(c, e.deadline)
        let watched: [(FileDescriptor?, Epoll.Events)] = [
            (run.stdin, [.writable, .edgeTriggered]), (run.stdout, [.readable, .edgeTriggered]),
            (run.stderr, [.readable, .edgeTriggered]), (run.child.exitWatch, [.readable])]
        for (fd, events) in watched {
            guard let fd else { continue }
            nextCGIGeneration = (nextCGIGeneration &+ 1) & Self.serialMask
            do { try epoll.add(fd, events, data: Self.cgiTag | UInt64(nextCGIGeneration) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))) } catch {
                e.output.fail("epoll: \(error)")
                break
            }
            cgiRuns[fd.rawValue] = (e, nextCGIGeneration)
            e.fds.append(fd.rawValue)
        }
        if e.output.failure != nil { cgiCheckDone(e) }
    }

    func cgiMeta(_ r: EpollRequest) -> Logger.Metadata { ["request_id": "\(r.id)", "cgi": "\(r.cgi?.scriptName ?? "-")"] }

    /// An event on a program's pipe or pidfd.
    func cgiEvent(_ data: UInt64) {
        let fd = Int32(truncatingIfNeeded: data & 0xffff_ffff)
        guard let (e, generation) = cgiRuns[fd], generation == UInt32(truncatingIfNeeded: data >> 32) & Self.serialMask else { return }
        let run = e.run
        if fd == run.stdin?.rawValue {
            run.feedStdin()
        } else if fd == run.stdout?.rawValue {
            e.stdoutReadable = true
            cgiReadStdout(e)
        } else if fd == run.stderr?.rawValue {
            let meta = e.client?.request.map(cgiMeta) ?? [:]
            run.readStderr(ctx, meta, buffer: &scratch)
        } else if fd == run.child.exitWatch.rawValue, !run.exited {
            run.reapIfExited()
            if e.client == nil { return sweepDyingCGI(Host.monotonicSeconds()) }
            e.stdoutReadable = true  // read what it wrote before it went
            cgiReadStdout(e)
        }
        cgiCheckDone(e)
    }

    /// Relays stdout while the client keeps up.
    func cgiReadStdout(_ e: EpollCGIRun) {
        guard let c = e.client, let r = c.request else {
            // The client is gone: read and drop, so the program is not stuck on a full pipe.
            while case .bytes = e.run.readStdout(into: &scratch) {}
            return
        }
        while e.stdoutReadable && e.output.relaying && c.outputPending < Self.outputHighWater {
            let before = c.output.count
            if !e.run.relayStdout(&e.output, into: &c.output, buffer: &scratch, date: ctx.httpDate(), draining: !ctx.mayKeepAlive) {
                e.stdoutReadable = false
            }
            r.bytesSent += c.output.count - before
            ctx.log(e.output.takeNotes(), cgiMeta(r))
            guard writeOutput(c) else {
                e.output.leave()
                ctx.log(e.output.takeNotes(), cgiMeta(r))
                return clientGone(c)
            }
            if c.outputPending > 0 { setDeadline(c, min(e.deadline, Host.monotonicSeconds() + timeouts.send)) }
        }
    }

    /// The program is over when it has exited and its stdout has ended (or it failed).
    func cgiCheckDone(_ e: EpollCGIRun) {
        guard let c = e.client, let r = c.request else { return }
        if e.output.failure != nil && !e.run.exited {
            e.run.terminate(now: Host.monotonicSeconds())
            return abandonCGI(e)  // it is ended in the background; the client gets its answer now
        }
        guard e.output.failure != nil || (e.output.stdoutDone && e.run.exited) else { return }
        forgetCGI(e)
        e.run.finish()
        ctx.cgiGate.release()
        startQueuedCGI()
        finishCGIRequest(e, c, r)
    }

    func finishCGIRequest(_ e: EpollCGIRun, _ c: EpollClient, _ r: EpollRequest) {
        r.cgiRun = nil
        r.upstreamTime = Host.monotonicSeconds() - r.upstreamStart
        r.status = e.output.status
        let decision = e.output.end(abnormalExit: e.run.abnormalExit, script: r.cgi?.scriptName ?? "CGI")
        ctx.log(e.output.takeNotes(), cgiMeta(r))
        exchangeEnded(c, decision.exchangeEnd)
    }

    /// The client has gone, or the program failed: SIGTERM now, SIGKILL after the grace
    /// time (from the sweep), the place freed once it is reaped.
    func abandonCGI(_ e: EpollCGIRun) {
        let now = Host.monotonicSeconds()
        e.run.terminate(now: now)
        e.run.closePipes()
        let c = e.client
        e.client = nil
        cgiDying.append(e)
        if let c, let r = c.request, r.cgiRun === e {
            finishCGIRequest(e, c, r)
        }
    }

    /// Runs of gone clients: SIGKILL after the grace time; reaped ones free their place.
    func sweepDyingCGI(_ now: Double) {
        guard !cgiDying.isEmpty else { return }
        for e in cgiDying {
            e.run.escalate(now: now, grace: cgi.killGrace)
            e.run.reapIfExited()
        }
        let done = cgiDying.filter { $0.run.exited }
        guard !done.isEmpty else { return }
        cgiDying.removeAll { $0.run.exited }
        for e in done {
            forgetCGI(e)
            e.run.finish()
            ctx.cgiGate.release()
        }
        startQueuedCGI()
    }

    func forgetCGI(_ e: EpollCGIRun) {
        for fd in e.fds where cgiRuns[fd]?.run === e { cgiRuns[fd] = nil }
        e.fds = []
    }

    /// A place is free: the oldest waiting request takes it.
    func startQueuedCGI() {
        while !cgiQueue.isEmpty {
            let c = cgiQueue.removeFirst()
            guard !c.closed, c.phase == .queued, let r = c.request, r.cgi != nil, r.cgiRun == nil else { continue }
            guard ctx.cgiGate.tryAcquire() else {
                cgiQueue.insert(c, at: 0)
                return
            }
            runCGI(c, r)
        }
    }

    /// cgi.timeout passed (SIGTERM), then the grace time (SIGKILL); or the client stopped
    /// taking output for timeouts.send.
    func cgiTimedOut(_ c: EpollClient, _ r: EpollRequest, _ e: EpollCGIRun, _ now: Double) {
        if now < e.deadline {
            ctx.logger.info("client took no output for \(timeouts.send) s; ending the CGI program", metadata: cgiMeta(r))
            return clientGone(c)
        }
        if !e.output.timedOut {
            e.output.timeout(after: cgi.timeout)
            ctx.log(e.output.takeNotes(), cgiMeta(r))
            e.run.terminate(now: now)
            setDeadline(c, now + cgi.killGrace)
        } else {
            e.run.escalate(now: now, grace: cgi.killGrace)
            setDeadline(c, now + 1)
        }
    }

    func cgiQueueTimedOut(_ c: EpollClient, _ r: EpollRequest) {
        cgiQueue.removeAll { $0 === c }
        exchangeEnded(c, ctx.cgiPlacesBusy(cgiMeta(r)))
    }

    /// The worker is exiting: no program outlives it.
    func endAllCGI() {
        for case let c? in clients { if let e = c.request?.cgiRun { e.run.finish() } }
        for e in cgiDying { e.run.finish() }
        cgiDying = []
    }
}
