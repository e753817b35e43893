import GatewayConfig
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's timers: one deadline per connection, swept from the loop.
extension EpollWorker {
    /// Each connection has one deadline at a time (`EpollClient.deadline`), that of its
    /// current phase; moving it costs a store. The loop sweeps them every `sweepSeconds`
    /// (10,000 connections take well under a millisecond), so no timer structure grows
    /// with the request rate.
    func sweepTimeouts(_ now: Double) {
        lastSweep = now
        sweepDyingCGI(now)
        var expired: [EpollClient] = []
        for case let c? in clients {
            if c.deadline <= now { expired.append(c) }
            if let h2 = c.h2 { for s in h2.streams.values where s.deadline <= now { expired.append(s) } }
        }
        for c in expired where !c.closed && c.deadline <= now { timedOut(c, now) }
    }

    /// Unix sockets with a full backlog, tried again soon.
    func retryConnects() {
        let due = connectRetries
        connectRetries = []
        for c in due where !c.closed && c.phase == .upstream {
            if let r = c.request, r.link?.awaitsConnectRetry == true { driveApp(c, r) }
        }
    }

    func timedOut(_ c: EpollClient, _ now: Double) {
        switch c.phase {
        case .session:
            guard c.session.wantsInput else {
                return clientGone(c)  // the client took nothing for timeouts.send
            }
            c.session.timedOut(ctx, now: now)  // 408, or an idle connection closed
            drive(c)
        case .queued:
            guard let r = c.request else { return closeClient(c) }
            if r.cgi != nil { return cgiQueueTimedOut(c, r) }
            queueTimedOut(c, r)
        case .upstream:
            guard let r = c.request else { return closeClient(c) }
            if let link = r.cgiLink { return cgiTimedOut(c, link, now) }
            upstreamTimedOut(c, r, now)
        case .lingering:
            closeClient(c)
        case .http2:
            h2TimedOut(c, now)
        }
    }
}
