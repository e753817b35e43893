import GatewaySystem
import AppPool
import Exchanges

/// The epoll worker's side of an app link (AppLink): the link is pumped until it waits,
/// and pumped again on the app connection's next event, a grant, the client taking its
/// output, or the deadline. App connections are registered in epoll once, with a
/// generation in their token; a kept one stays registered while parked.
extension EpollWorker {
    /// The request's body is whole: its FastCGI exchange starts.
    func startApp(_ c: EpollClient, _ r: EpollRequest) {
        guard case .app(let index, let match) = r.destination else { return exchangeEnded(c, .failed(500, [])) }
        r.link = AppLink(ctx: ctx, record: r, appIndex: index, match: match, body: r.body, remote: c.remote,
                         local: c.local, host: r)
        driveApp(c, r)
    }

    /// Pumps the link until it has to wait.
    func driveApp(_ c: EpollClient, _ r: EpollRequest) {
        defer { if !handedOff.isEmpty { startHandedOff() } }
        while c.request === r && !c.closed, let link = r.link {
            let wait = link.pump(buffer: &scratch)
            switch wait {
            case .slot:
                guard acquireSlot(c, r, link) else { return }
            case .connectBusy, .app:  // (a unix socket's full backlog is tried again soon)
                if case .connectBusy = wait { connectRetries.append(c) }
                c.deadline = link.deadline
                return
            case .client:
                c.deadline = Host.monotonicSeconds() + timeouts.send
                return
            case .ended(let end):
                r.link = nil
                if case .clientGone = end { return clientGone(c) }
                return exchangeEnded(c, end)
            }
        }
    }

    /// A slot was granted from the queue, or handed off by a release.
    func startUpstream(_ c: EpollClient, _ r: EpollRequest, _ lease: AppDispatcher.Lease) {
        guard let link = r.link else { return }
        c.phase = .upstream
        link.granted(lease, now: Host.monotonicSeconds())
        driveApp(c, r)
    }

    func backendEvent(_ c: EpollClient, _ events: Epoll.Events) {
        guard let r = c.request, let link = r.link else { return }
        link.ready(readable: !events.isDisjoint(with: [.readable, .peerClosed]), writable: events.contains(.writable),
                   failed: !events.isDisjoint(with: [.hangup, .error]))
        driveApp(c, r)
    }

    /// The link's deadline passed, or the client took nothing for timeouts.send.
    func upstreamTimedOut(_ c: EpollClient, _ r: EpollRequest, _ now: Double) {
        if c.outputPending > 0 && !c.writable {
            ctx.logger.info("client took nothing for \(timeouts.send) s; closing", metadata: r.link?.meta ?? [:])
            return clientGone(c)
        }
        r.link?.timedOut(now: now)
        driveApp(c, r)
    }

    // MARK: - App connections

    /// Registers a new app connection for `c` (a kept one is still registered, with its
    /// token: its fd and registration generation, not the client).
    func watchBackend(_ fd: FileDescriptor, for c: EpollClient, kept: Bool) throws(SystemError) {
        let index = Int(fd.rawValue)
        if index >= backends.count { backends += Array(repeating: Backend(), count: max(index + 1 - backends.count, backends.count)) }
        backends[index].owner = c
        backends[index].stirred = false
        guard !kept else { return }
        backends[index].generation = (backends[index].generation &+ 1) & Self.serialMask
        let token = Self.backendTag | UInt64(backends[index].generation) << 32 | UInt64(UInt32(bitPattern: fd.rawValue))
        try epoll.add(fd, Self.clientEvents, data: token)
    }

    /// Whether an event came on a parked connection (the app closed it, or wrote past its
    /// END_REQUEST): this loop's check before reuse, in place of a poll per lease
    /// (AppDispatcher.loopWatchesParked). nginx learns of its cached connections the same way.
    func stirredWhileParked(_ fd: FileDescriptor) -> Bool {
        let i = Int(fd.rawValue)
        guard i < backends.count else { return false }
        defer { backends[i].stirred = false }
        return backends[i].stirred
    }

    /// Response bytes from an exchange: written at once as far as the client takes them,
    /// the rest queued. False when the client is gone.
    func sendToClient(_ c: EpollClient, _ bytes: [UInt8]) -> Bool {
        if c.stream != nil {
            c.out.queue(bytes[...])
            return c.writable ? writeStream(c) : true
        }
        guard c.writable else {
            c.out.queue(bytes[...])
            return true
        }
        return progressed(c, c.out.send(bytes, to: c.fd))
    }
}

/// The epoll worker's request as its app link's host: each call goes to the worker, for
/// this request's client.
extension EpollRequest: AppLinkHost {
    func sendToClient(_ bytes: [UInt8]) -> Bool { worker.sendToClient(client, bytes) }
    var clientBacklog: Int { client.outputPending }
    func watch(_ fd: FileDescriptor, kept: Bool) throws(SystemError) { try worker.watchBackend(fd, for: client, kept: kept) }
    func stirredWhileParked(_ fd: FileDescriptor) -> Bool { worker.stirredWhileParked(fd) }
    func unwatch(_ fd: FileDescriptor) { worker.backends[Int(fd.rawValue)].owner = nil }
    func releaseSlot(_ lease: AppDispatcher.Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool) -> Bool {
        worker.releaseSlot(lease, connection: connection, reusable: reusable, served: served, overloaded: overloaded)
    }
}
