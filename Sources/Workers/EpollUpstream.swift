import GatewayConfig
import GatewaySystem
import Logging
import AppPool
import Exchanges

/// The epoll worker's driver of a FastCGI exchange (AppExchange): each step the engine
/// asks for is tried without blocking; a step that cannot go on waits for the app
/// connection's next event (or a grant, or the connection's deadline), and the loop
/// resumes the engine from there. The decisions are the engine's, the same the
/// blocking workers' driver carries out.
extension EpollWorker {
    func meta(_ r: EpollRequest) -> Logger.Metadata { ["request_id": "\(r.id)", "app": "\(r.app?.name ?? "-")"] }

    /// Carries out the engine's steps until one has to wait.
    func driveApp(_ c: EpollClient, _ r: EpollRequest) {
        while c.request === r && !c.closed, r.exchange != nil {
            let step = r.exchange!.next()
            ctx.log(r.exchange!.takeNotes(), meta(r))
            switch step {
            case .acquireSlot:
                guard acquireSlot(c, r) else { return }
            case .connect:
                guard openBackend(c, r) else { return }
            case .discardConnection:
                if let b = detachBackend(r) { try? b.close() }
            case .write:
                if writeApp(c, r) { continue }
                // The app's socket is full: it may have answered early, so read if it can.
                guard r.backendReadable, readApp(c, r) else { return }
            case .supplyBody:
                r.body.supply(&r.exchange!, buffer: &scratch)
            case .read:
                guard readApp(c, r) else { return }
            case .release(let reusable, let served, let overloaded):
                releaseSlot(c, r, reusable: reusable, served: served, overloaded: overloaded)
            case .respond, .redirect, .finished, .closeClient:
                if r.exchange!.status != 0 { r.status = r.exchange!.status }  // the head that went out
                return exchangeEnded(c, step.exchangeEnd!)
            }
        }
    }

    // MARK: - Connecting

    /// A slot was granted (at once, from the queue, or handed off by a release).
    func startUpstream(_ c: EpollClient, _ r: EpollRequest, _ lease: AppDispatcher.Lease) {
        r.lease = lease
        let now = Host.monotonicSeconds()
        r.upstreamStart = now
        ctx.recordQueueWait(app: r.appIndex, seconds: now - r.queueStart)
        c.phase = .connecting
        var kept = false
        if let k = lease.keptConnection {
            if stirredWhileParked(k) {
                try? k.close()
            } else {
                kept = attachBackend(c, r, k, reused: true, connecting: false)
            }
        }
        r.exchange?.granted(slot: lease.slot, requestID: lease.requestID, kept: kept, now: now)
        if kept { c.phase = .upstream }
        setDeadline(c, r.exchange?.deadline ?? now)
        driveApp(c, r)
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

    /// Starts a connect; true when the engine can go on at once (connected, or failed).
    func openBackend(_ c: EpollClient, _ r: EpollRequest) -> Bool {
        guard let lease = r.lease else { return true }
        let now = Host.monotonicSeconds()
        do {
            switch try BackendConnector.startConnect(lease.address) {
            case .connected(let fd):
                guard attachBackend(c, r, fd, reused: false, connecting: false) else { return true }
                c.phase = .upstream
                r.exchange?.connected(now: now)
                return true
            case .inProgress(let fd):
                c.phase = .connecting
                guard attachBackend(c, r, fd, reused: false, connecting: true) else { return true }
            case .busy:
                c.phase = .connecting
                connectRetries.append(c)
            }
        } catch {
            r.exchange?.connectFailed(error, now: now)
            return true
        }
        setDeadline(c, r.exchange?.deadline ?? now)
        return false
    }

    /// Makes `fd` the request's app connection, registered in epoll (a kept one still is).
    /// False when it cannot be registered: the engine has been told.
    func attachBackend(_ c: EpollClient, _ r: EpollRequest, _ fd: FileDescriptor, reused: Bool, connecting: Bool) -> Bool {
        let index = Int(fd.rawValue)
        if index >= backendOwners.count { backendOwners += Array(repeating: nil, count: max(index + 1 - backendOwners.count, backendOwners.count)) }
        backendOwners[index] = c
        r.backend = fd
        r.connecting = connecting
        r.backendReadable = false
        r.backendWritable = !connecting
        if index >= parkedEvents.count {
            let more = max(index + 1 - parkedEvents.count, parkedEvents.count)
            parkedEvents += Array(repeating: false, count: more)
            backendGenerations += Array(repeating: 0, count: more)
        }
        parkedEvents[index] = false
        // A kept connection is still registered from its first request (the token is its
        // fd and registration generation, not the client): no system call.
        guard !reused else { return true }
        backendGenerations[index] = (backendGenerations[index] &+ 1) & Self.serialMask
        let token = Self.backendTag | UInt64(backendGenerations[index]) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))
        do { try epoll.add(fd, Self.clientEvents, data: token) } catch {
            r.exchange?.connectFailed(.connect("epoll: \(error)"), now: Host.monotonicSeconds())
            return false
        }
        return true
    }

    /// The connect deadline passed, or a full backlog's retry is due.
    func connectTimedOut(_ c: EpollClient, _ r: EpollRequest, _ now: Double) {
        if r.backend == nil && now < (r.exchange?.deadline ?? 0) {
            guard openBackend(c, r) else { return }  // a full backlog: try again
        } else {
            r.exchange?.timedOut(now: now)
        }
        driveApp(c, r)
    }

    // MARK: - Talking to the app

    func backendEvent(_ c: EpollClient, _ events: Epoll.Events) {
        guard let r = c.request else { return }
        if r.connecting {
            guard !events.isDisjoint(with: [.writable, .error, .hangup]) else { return }
            let e = r.backend.map(Socket.pendingError) ?? 0
            let now = Host.monotonicSeconds()
            if e == 0 {
                r.connecting = false
                r.backendWritable = true
                c.phase = .upstream
                r.exchange?.connected(now: now)
            } else {
                let address = r.lease.map { "\($0.address)" } ?? "?"
                r.exchange?.connectFailed(.connect("\(address): \(SystemError(errno: e, "connect"))"), now: now)
            }
            return driveApp(c, r)
        }
        if !events.isDisjoint(with: [.readable, .peerClosed, .hangup, .error]) { r.backendReadable = true }
        if !events.isDisjoint(with: [.writable, .hangup, .error]) { r.backendWritable = true }
        driveApp(c, r)
    }

    /// Writes what the engine has for the app; false when the socket is full.
    func writeApp(_ c: EpollClient, _ r: EpollRequest) -> Bool {
        guard let backend = r.backend, r.exchange != nil else { return true }
        while r.backendWritable && r.exchange!.outgoingSent < r.exchange!.outgoing.count {
            do {
                guard let n = try backend.write(r.exchange!.outgoing, from: r.exchange!.outgoingSent), n > 0 else {
                    r.backendWritable = false
                    break
                }
                r.exchange!.wrote(n, now: Host.monotonicSeconds())
            } catch {
                // The app closed its side: what it sent before (an early answer) may
                // still be read; the engine reads next.
                r.backendReadable = true
                r.exchange!.writeFailed(now: Host.monotonicSeconds())
                return true
            }
        }
        setDeadline(c, r.exchange!.deadline)
        return r.exchange!.outgoingSent == r.exchange!.outgoing.count
    }

    /// One read from the app into the client's output, written on at once. False when the
    /// engine must wait: nothing to read, or the client has `outputHighWater` bytes
    /// unsent (its next writable event resumes the engine).
    func readApp(_ c: EpollClient, _ r: EpollRequest) -> Bool {
        guard let backend = r.backend else {
            r.exchange?.closed(now: Host.monotonicSeconds())
            return true
        }
        if r.backendReadable && c.outputPending < Self.outputHighWater {
            let n: Int?
            do { n = try backend.read(into: &scratch, from: 0) } catch { n = 0 }  // a reset: like an early close
            if let n {
                let now = Host.monotonicSeconds()
                if n == 0 {
                    r.exchange!.closed(now: now)
                    return true
                }
                if n < scratch.count { r.backendReadable = false }
                let before = c.output.count
                r.exchange!.received(scratch[0..<n], into: &c.output, mayKeepAlive: ctx.mayKeepAlive, date: ctx.httpDate(), now: now)
                r.bytesSent += c.output.count - before
                guard writeOutput(c) else {
                    clientGone(c)
                    return false
                }
                return true
            }
            r.backendReadable = false
        }
        setDeadline(c, c.outputPending > 0 ? Host.monotonicSeconds() + timeouts.send : r.exchange!.deadline)
        return false
    }

    func upstreamTimedOut(_ c: EpollClient, _ r: EpollRequest) {
        if c.outputPending > 0 && !c.writable {
            ctx.logger.info("client took nothing for \(timeouts.send) s; closing", metadata: meta(r))
            return clientGone(c)
        }
        r.exchange?.timedOut(now: Host.monotonicSeconds())
        driveApp(c, r)
    }
}
