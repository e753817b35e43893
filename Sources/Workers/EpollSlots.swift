import GatewaySystem
import AppPool
import Exchanges

/// The epoll worker's app slots: take one without waiting (or queue for it, the grant
/// coming by signal), hand a released slot to this worker's own next waiter, and give
/// everything back when a client leaves. The slot table's rules are AppPool's; this is
/// only the bookkeeping of which client waits for which ticket.
extension EpollWorker {
    /// Takes a slot if one is free (true: the engine goes on), or queues for one.
    func acquireSlot(_ c: EpollClient, _ r: EpollRequest) -> Bool {
        guard let app = r.app else {
            exchangeEnded(c, .failed(500, []))
            return false
        }
        r.queueStart = Host.monotonicSeconds()
        switch ctx.dispatcher.tryAcquire(app: r.appIndex, notifyBySignal: true) {
        case .granted(let lease):
            startUpstream(c, r, lease)
            return false  // startUpstream drove the engine on
        case .queued(let ticket):
            r.ticket = ticket
            queued[r.appIndex].append((ticket, c))  // tickets only grow: the list stays in order
            c.phase = .queued
            setDeadline(c, Host.monotonicSeconds() + app.queueTimeout)
            return false
        case .queueFull:
            r.exchange?.noSlot(.queueFull)
            return true
        }
    }

    /// Hands granted slots to their waiting requests, oldest first.
    func collectGrants(periodic: Bool) {
        grantsMayWait = false
        let now = Host.monotonicSeconds()
        let chores = periodic && now - lastChores >= 0.2
        if chores { lastChores = now }
        for app in queued.indices where !queued[app].isEmpty {
            let granted = ctx.dispatcher.collectGrants(app: app, tickets: queued[app].lazy.map(\.ticket), periodic: chores)
            guard !granted.isEmpty else { continue }
            let waiting = queued[app]
            queued[app].removeFirst(granted.count)
            for (i, (_, lease)) in granted.enumerated() {
                let c = waiting[i].client
                guard !c.closed, let r = c.request else {
                    ctx.dispatcher.release(lease, connection: lease.keptConnection, reusable: true, served: false)
                    continue
                }
                r.ticket = nil
                startUpstream(c, r, lease)
            }
        }
    }

    /// Takes a request out of the list of queued ones (it timed out, or its client left).
    func unqueue(_ r: EpollRequest, _ ticket: Int64) {
        if let i = queued[r.appIndex].firstIndex(where: { $0.ticket == ticket }) { queued[r.appIndex].remove(at: i) }
        r.ticket = nil
    }

    func queueTimedOut(_ c: EpollClient, _ r: EpollRequest) {
        guard let ticket = r.ticket else { return exchangeEnded(c, .failed(500, [])) }
        unqueue(r, ticket)
        if let lease = ctx.dispatcher.cancelWait(app: r.appIndex, ticket: ticket, timedOut: true) {
            return startUpstream(c, r, lease)  // granted at the last moment
        }
        r.exchange?.noSlot(.queueTimedOut)
        driveApp(c, r)
    }

    /// Gives the slot back. The connection is kept for the next request when it may be
    /// (keep_conn) and left registered in epoll while parked, its events ignored.
    func releaseSlot(_ c: EpollClient, _ r: EpollRequest, reusable: Bool, served: Bool, overloaded: Bool = false) {
        guard let lease = r.lease else { return }
        let ok = reusable && !r.connecting
        let backend = detachBackend(r)
        r.lease = nil
        r.upstreamTime = Host.monotonicSeconds() - r.upstreamStart
        let (slow, handOff) = ctx.dispatcher.releaseHandingOff(lease, connection: backend, reusable: ok, served: served, overloaded: overloaded)
        if slow, let app = r.app {
            ctx.logger.warning("\(ctx.slowRequestMessage(app.name, r.head.method, r.target, slot: lease.slot, seconds: r.upstreamTime ?? 0))", metadata: meta(r))
        }
        if let (ticket, next) = handOff {
            // The slot went to our own oldest queued request: send it now, so the app
            // works on it while we write this response to its client.
            let app = lease.app
            if let i = queued[app].firstIndex(where: { $0.ticket == ticket }) {
                let waiter = queued[app].remove(at: i).client
                if !waiter.closed, let wr = waiter.request {
                    wr.ticket = nil
                    startUpstream(waiter, wr, next)
                    return
                }
            }
            ctx.dispatcher.release(next, connection: next.keptConnection, reusable: true, served: false)
        }
        grantsMayWait = true  // a release may also have granted a slot to another of ours
    }

    func detachBackend(_ r: EpollRequest) -> FileDescriptor? {
        guard let b = r.backend else { return nil }
        backendOwners[Int(b.rawValue)] = nil
        r.backend = nil
        return b
    }

    /// The client is gone: whatever the request holds is given back.
    func abandonUpstream(_ c: EpollClient, _ r: EpollRequest) {
        if let e = r.cgiRun {
            r.cgiRun = nil
            e.client = nil
            e.run.terminate(now: Host.monotonicSeconds())
            e.run.closePipes()
            cgiDying.append(e)
        }
        if r.cgi != nil, c.phase == .queued { cgiQueue.removeAll { $0 === c } }
        if let ticket = r.ticket {
            unqueue(r, ticket)
            if let lease = ctx.dispatcher.cancelWait(app: r.appIndex, ticket: ticket, timedOut: false) {
                ctx.dispatcher.release(lease, connection: lease.keptConnection, reusable: true, served: false)
                grantsMayWait = true
            }
        }
        if r.exchange != nil {
            // The engine's own release (a finished response's connection may still be kept).
            r.exchange!.clientGone()
            while case .release(let reusable, let served, let overloaded) = r.exchange!.next() {
                releaseSlot(c, r, reusable: reusable, served: served, overloaded: overloaded)
            }
            r.exchange = nil
        }
        if r.lease != nil { releaseSlot(c, r, reusable: false, served: false) }
    }
}
