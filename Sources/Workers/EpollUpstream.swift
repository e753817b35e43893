import GatewayConfig
import GatewaySystem
import Logging
import AppPool
import Exchanges

/// The epoll worker's side of a FastCGI exchange, once it has a slot (EpollSlots.swift):
/// connect without blocking, send the request records, relay the response. What follows
/// a failure is UpstreamPolicy's decision, the same table the blocking exchange uses.
extension EpollWorker {
    func meta(_ r: EpollRequest) -> Logger.Metadata { ["request_id": "\(r.requestID)", "app": "\(r.app?.name ?? "-")"] }

    // MARK: - Connecting

    func startUpstream(_ c: EpollClient, _ r: EpollRequest, _ lease: AppDispatcher.Lease) {
        r.lease = lease
        makeRecords(r, keepConnection: r.app?.keepConnection ?? false, id: lease.requestID)
        r.upstreamStart = Host.monotonicSeconds()
        ctx.recordQueueWait(app: r.appIndex, seconds: r.upstreamStart - r.queueStart)
        r.connectDeadline = r.upstreamStart + timeouts.backendConnect
        c.phase = .connecting
        setDeadline(c, r.connectDeadline)
        if let kept = lease.keptConnection, !stirredWhileParked(kept) {
            attachBackend(c, r, kept, reused: true, connecting: false)
        } else {
            if let kept = lease.keptConnection { try? kept.close() }
            openBackend(c, r)
        }
    }

    /// Whether an event came on a parked connection (the app closed it, or wrote past its
    /// END_REQUEST): this loop's check before reuse, in place of a poll per lease
    /// (AppDispatcher.loopWatchesParked). nginx learns of its cached connections the same way.
    func stirredWhileParked(_ fd: FileDescriptor) -> Bool {
        let i = Int(fd.rawValue)
        guard i < parkedEvents.count else { return false }
        defer { parkedEvents[i] = false }
        return parkedEvents[i]
    }

    func openBackend(_ c: EpollClient, _ r: EpollRequest) {
        guard let lease = r.lease else { return }
        do {
            switch try BackendConnector.startConnect(lease.address) {
            case .connected(let fd): attachBackend(c, r, fd, reused: false, connecting: false)
            case .inProgress(let fd): attachBackend(c, r, fd, reused: false, connecting: true)
            case .busy: connectRetries.append(c)  // the deadline stays r.connectDeadline
            }
        } catch {
            unreachable(c, r, error)
        }
    }

    func attachBackend(_ c: EpollClient, _ r: EpollRequest, _ fd: FileDescriptor, reused: Bool, connecting: Bool) {
        let index = Int(fd.rawValue)
        if index >= backendOwners.count { backendOwners += Array(repeating: nil, count: max(index + 1 - backendOwners.count, backendOwners.count)) }
        backendOwners[index] = c
        r.backend = fd
        r.backendReused = reused
        r.connecting = connecting
        r.backendReadable = false
        r.backendWritable = !connecting
        r.writeFailed = false
        r.recordsSent = 0
        r.chunk = []
        r.chunkSent = 0
        r.spoolSent = 0
        r.spoolDone = r.spool == nil
        r.relay = ResponseRelay(request: r.head, requestID: r.lease?.requestID ?? 1, maxHeadSize: ctx.config.limits.maxResponseHead, keepAlive: r.keepAlive)
        if index >= parkedEvents.count {
            let more = max(index + 1 - parkedEvents.count, parkedEvents.count)
            parkedEvents += Array(repeating: false, count: more)
            backendGenerations += Array(repeating: 0, count: more)
        }
        if reused {
            // Still registered from its first request (the token is its fd and
            // registration generation, not the client): no system call. If something happened while it was parked, read first.
            r.backendReadable = parkedEvents[index]
        } else {
            backendGenerations[index] = (backendGenerations[index] &+ 1) & Self.serialMask
            let token = Self.backendTag | UInt64(backendGenerations[index]) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))
            do { try epoll.add(fd, Self.clientEvents, data: token) } catch {
                return unreachable(c, r, .connect("epoll: \(error)"))
            }
        }
        parkedEvents[index] = false
        if !connecting { beginSending(c, r) }
    }

    func connectTimedOut(_ c: EpollClient, _ r: EpollRequest, _ now: Double) {
        if r.backend == nil && now < r.connectDeadline { return openBackend(c, r) }  // a full backlog: try again
        unreachable(c, r, .connect("\(r.lease.map { "\($0.address)" } ?? "?"): timed out after \(timeouts.backendConnect) s"))
    }

    func unreachable(_ c: EpollClient, _ r: EpollRequest, _ error: UpstreamError) {
        upstreamFailed(c, r, .unreachable(error))
    }

    /// Every failure of an exchange goes through the one retry table (UpstreamPolicy).
    func upstreamFailed(_ c: EpollClient, _ r: EpollRequest, _ failure: UpstreamFailure) {
        guard let app = r.app else { return respondError(c, r, 500) }
        // The epoll worker holds every body before it asks for a slot: always replayable.
        let state = AttemptState(tries: r.tries, slot: r.lease?.slot ?? -1, reusedConnection: r.backendReused, replayable: true,
                                 idempotent: r.idempotent, headSent: r.relay?.headSent ?? false)
        let (decision, note) = UpstreamPolicy.decide(failure, state, app: app.name, slotCount: app.slotCount, queueTimeout: app.queueTimeout)
        ctx.log([note], meta(r))
        switch decision {
        case .reconnect:
            if let b = detachBackend(r) { try? b.close() }
            c.phase = .connecting
            openBackend(c, r)
        case .anotherSlot(let overloaded):
            releaseSlot(c, r, reusable: false, served: false, overloaded: overloaded)
            acquireSlot(c, r)
        case .respond(let status, let retryAfter):
            releaseSlot(c, r, reusable: false, served: false, overloaded: failure == .overloaded)
            r.relay = nil
            respondError(c, r, status, retryAfter.map { [("Retry-After", $0)] } ?? [])
        case .close:
            releaseSlot(c, r, reusable: false, served: false)
            r.status = r.relay?.status ?? r.status  // the head that went out, as the blocking exchange logs it
            r.relay = nil
            r.keepAlive = false
            finishRequest(c, r, keep: false)
        }
    }

    // MARK: - Talking to the app

    func backendEvent(_ c: EpollClient, _ events: Epoll.Events) {
        guard let r = c.request else { return }
        if r.connecting {
            guard !events.isDisjoint(with: [.writable, .error, .hangup]) else { return }
            let e = r.backend.map(Socket.pendingError) ?? 0
            guard e == 0 else {
                return unreachable(c, r, .connect("\(r.lease.map { "\($0.address)" } ?? "?"): \(SystemError(errno: e, "connect"))"))
            }
            r.connecting = false
            r.backendWritable = true
            return beginSending(c, r)
        }
        if !events.isDisjoint(with: [.readable, .peerClosed, .hangup, .error]) { r.backendReadable = true }
        if !events.isDisjoint(with: [.writable, .hangup, .error]) {
            r.backendWritable = true
            sendRecords(c, r)
        }
        if c.request === r && r.backend != nil && r.backendReadable { readBackend(c, r) }
    }

    func beginSending(_ c: EpollClient, _ r: EpollRequest) {
        c.phase = .upstream
        setDeadline(c, Host.monotonicSeconds() + timeouts.backendRead)
        sendRecords(c, r)
        if c.request === r && r.backend != nil && r.backendReadable { readBackend(c, r) }
    }

    /// Writes the request records, then a spooled body as STDIN records, as the app takes them.
    func sendRecords(_ c: EpollClient, _ r: EpollRequest) {
        guard let backend = r.backend, !r.writeFailed else { return }
        while r.backendWritable {
            let sent: Int?
            do {
                if r.recordsSent < r.records.count {
                    sent = try backend.write(r.records, from: r.recordsSent)
                    r.recordsSent += sent ?? 0
                } else if r.chunkSent < r.chunk.count {
                    sent = try backend.write(r.chunk, from: r.chunkSent)
                    r.chunkSent += sent ?? 0
                } else if !r.spoolDone, let spool = r.spool {
                    // The next piece of the spooled body (a local file: a short blocking read),
                    // through the loop's read buffer rather than a new 64 KiB one per piece.
                    let n = (try? spool.pread(into: &scratch, at: r.spoolSent)) ?? 0
                    r.spoolSent += n
                    r.chunk = n > 0 ? FastCGIRequestWriter.stdin(requestID: r.lease?.requestID ?? 1, scratch[0..<n]) : FastCGIRequestWriter.endOfStdin(requestID: r.lease?.requestID ?? 1)
                    r.chunkSent = 0
                    if n == 0 { r.spoolDone = true }
                    continue
                } else {
                    return  // all sent
                }
            } catch {
                // The app closed its side: what it sent before (an early answer) may
                // still be read; the read decides.
                r.writeFailed = true
                r.backendReadable = true
                return
            }
            guard let n = sent, n > 0 else {
                r.backendWritable = false
                return
            }
            setDeadline(c, Host.monotonicSeconds() + timeouts.backendRead)
        }
    }

    /// Reads the app's output into the client's buffer and writes it on, until the app
    /// has nothing more for now or the client has `outputHighWater` bytes unsent (then the
    /// client's next writable event resumes it).
    func readBackend(_ c: EpollClient, _ r: EpollRequest) {
        while r.backendReadable && c.outputPending < Self.outputHighWater {
            guard let backend = r.backend, var relay = r.relay else { return }
            let n: Int
            do {
                guard let got = try backend.read(into: &scratch, from: 0) else {
                    r.backendReadable = false
                    break
                }
                n = got
            } catch {
                n = 0  // a reset: like an early close
            }
            if n == 0 { return appClosed(c, r) }
            if n < scratch.count { r.backendReadable = false }
            let before = c.output.count
            r.relay = nil  // so the relay's buffers are not copied on write
            var notes: [ExchangeNote] = []
            do {
                try relay.receive(scratch[0..<n], into: &c.output, mayKeepAlive: ctx.mayKeepAlive, date: ctx.httpDate(), notes: &notes)
                ctx.log(notes, meta(r))
                r.relay = relay
            } catch {
                ctx.log(notes, meta(r))
                r.relay = relay
                return upstreamFailed(c, r, relay.failure(for: error))
            }
            r.bytesSent += c.output.count - before
            if relay.ended { return upstreamDone(c, r, relay) }
            guard writeOutput(c) else { return clientGone(c) }
            setDeadline(c, Host.monotonicSeconds() + (c.outputPending > 0 ? timeouts.send : timeouts.backendRead))
        }
    }

    /// The app's response is complete.
    func upstreamDone(_ c: EpollClient, _ r: EpollRequest, _ relay: ResponseRelay) {
        releaseSlot(c, r, reusable: relay.reusable, served: true)
        r.status = relay.status
        r.relay = nil
        if let location = relay.redirect {
            let (allowed, note) = r.redirects.follow(location)
            ctx.log([note], meta(r))
            guard allowed else { return respondError(c, r, 500) }
            r.target = location
            r.keepAlive = r.keepAlive && (!r.hasBody || r.bodyDone)
            return route(c, r)
        }
        r.keepAlive = relay.keepAlive
        finishRequest(c, r, keep: relay.keepAlive)
    }

    /// The app closed the connection (or reset it).
    func appClosed(_ c: EpollClient, _ r: EpollRequest) {
        upstreamFailed(c, r, r.relay?.failureOnClose ?? .broken(.closedEarly))
    }

    func upstreamTimedOut(_ c: EpollClient, _ r: EpollRequest) {
        if c.outputPending > 0 && !c.writable {
            ctx.logger.info("client took nothing for \(timeouts.send) s; closing", metadata: meta(r))
            return clientGone(c)
        }
        upstreamFailed(c, r, .broken(.timeout))
    }
}
