import GatewayConfig
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's timers: one deadline per connection, swept from the loop.
extension EpollWorker {
    /// Each connection has one deadline at a time, that of its current phase; moving it
    /// costs a store. The loop sweeps them every `sweepSeconds` (10,000 connections take
    /// well under a millisecond), so no timer structure grows with the request rate.
    func setDeadline(_ c: EpollClient, _ t: Double) {
        c.deadline = t
    }

    func sweepTimeouts(_ now: Double) {
        lastSweep = now
        sweepDyingCGI(now)
        var expired: [EpollClient] = []
        for case let c? in clients where c.deadline <= now { expired.append(c) }
        for c in expired where !c.closed && c.deadline <= now { timedOut(c, now) }
    }

    /// Unix sockets with a full backlog, tried again soon.
    func retryConnects(_ now: Double) {
        let due = connectRetries
        connectRetries = []
        for c in due where !c.closed && c.phase == .connecting {
            guard let r = c.request, r.lease != nil, r.backend == nil else { continue }
            connectTimedOut(c, r, now)
        }
    }

    func timedOut(_ c: EpollClient, _ now: Double) {
        switch c.phase {
        case .head:
            if c.intake.expiry == .respond408 {
                c.output = ResponseHead.error(408, keepAlive: false, date: ctx.httpDate())
                c.outputStart = 0
                c.lingerOnClose = true
                c.keepAfterFlush = false
                c.phase = .flushing
                setDeadline(c, now + 1)
                flushClient(c)
            } else {
                closeClient(c)  // an idle keep-alive connection
            }
        case .body:
            guard let r = c.request else { return closeClient(c) }
            respondError(c, r, 408, keep: false)
        case .queued:
            guard let r = c.request else { return closeClient(c) }
            if r.cgi != nil { return cgiQueueTimedOut(c, r) }
            queueTimedOut(c, r)
        case .connecting:
            guard let r = c.request else { return closeClient(c) }
            connectTimedOut(c, r, now)
        case .upstream:
            guard let r = c.request else { return closeClient(c) }
            if let e = r.cgiRun { return cgiTimedOut(c, r, e, now) }
            upstreamTimedOut(c, r)
        case .flushing, .lingering:
            closeClient(c)
        }
    }
}
