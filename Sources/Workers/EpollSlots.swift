import GatewaySystem
import AppPool
import Exchanges

/// The epoll worker's app slots: take one without waiting (or queue for it, the grant
/// coming by signal), hand a released slot to this worker's own next waiter, and give
/// everything back when a client leaves. The slot table's rules are AppPool's; this is
/// only the bookkeeping of which client waits for which ticket.
extension EpollWorker {
    /// Takes a slot if one is free, or queues for one. True: the link can go on (granted,
    /// or told the queue is full).
    func acquireSlot(_ c: EpollClient, _ r: EpollRequest, _ link: AppLink) -> Bool {
        link.queueStart = Host.monotonicSeconds()
        switch ctx.dispatcher.tryAcquire(app: r.appIndex, notifyBySignal: true, avoid: link.avoidServer) {
        case .granted(let lease):
            link.granted(lease, now: Host.monotonicSeconds())
            return true
        case .queued(let ticket):
            r.ticket = ticket
            queued[r.appIndex].append((ticket, c))  // tickets only grow: the list stays in order
            c.phase = .queued
            c.deadline = link.queueStart + link.x.app.queueTimeout
            return false
        case .queueFull:
            link.x.noSlot(.queueFull)
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
            let granted = ctx.dispatcher.collectGrants(app: app, count: queued[app].count, ticket: { queued[app][$0].ticket }, periodic: chores)
            guard !granted.isEmpty else { continue }
            let waiting = queued[app]
            queued[app].removeFirst(granted.count)
            for (i, (_, lease)) in granted.enumerated() { hand(lease, to: waiting[i].client) }
        }
    }

    /// A slot granted to a waiting request: it goes on, or the slot goes back if its
    /// client has left meanwhile.
    func hand(_ lease: AppDispatcher.Lease, to c: EpollClient?) {
        guard let c, !c.closed, let r = c.request else {
            _ = ctx.dispatcher.release(lease, connection: lease.keptConnection, reusable: true, served: false)
            return
        }
        r.ticket = nil
        startUpstream(c, r, lease)
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
            return hand(lease, to: c)  // granted at the last moment
        }
        c.phase = .upstream
        r.link?.x.noSlot(.queueTimedOut)
        driveApp(c, r)
    }

    /// Gives a slot back (the link's host call). A kept connection stays registered in
    /// epoll while parked, its events noted for the next request that takes it. True when
    /// the request counted as slow.
    func releaseSlot(_ lease: AppDispatcher.Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool) -> Bool {
        let (slow, handOff) = ctx.dispatcher.releaseHandingOff(lease, connection: connection, reusable: reusable, served: served, overloaded: overloaded)
        grantsMayWait = true  // a release may also have granted a slot to another of ours
        if let h = handOff { handedOff.append((lease.app, h.ticket, h.lease)) }
        return slow
    }

    /// Slots released to our own oldest queued requests: each is sent now, so the app
    /// works on it while we write the last response to its client. (Not from inside the
    /// releasing link's pump: that holds the loop's scratch buffer.)
    func startHandedOff() {
        while !handedOff.isEmpty {
            let (app, ticket, next) = handedOff.removeFirst()
            hand(next, to: queued[app].firstIndex { $0.ticket == ticket }.map { queued[app].remove(at: $0).client })
        }
    }

    /// The client is gone: whatever the request holds is given back.
    func abandonUpstream(_ c: EpollClient, _ r: EpollRequest) {
        abandonCGI(r)
        if r.cgi != nil, c.phase == .queued { cgiQueue.removeAll { $0 === c } }
        if let ticket = r.ticket {
            unqueue(r, ticket)
            if let lease = ctx.dispatcher.cancelWait(app: r.appIndex, ticket: ticket, timedOut: false) {
                ctx.dispatcher.release(lease, connection: lease.keptConnection, reusable: true, served: false)
                grantsMayWait = true
            }
        }
        if let link = r.link {
            r.link = nil
            link.abandon()  // the engine's own release (a finished response's connection may still be kept)
        }
    }
}
