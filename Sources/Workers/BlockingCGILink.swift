import GatewaySystem
import Exchanges

/// The blocking workers' side of a CGI link (CGILink): a place is waited for in the
/// worker's CGIGate, then one poll over the program's pipes, its pidfd and the
/// client's hang-up, a second at a time, brings the link its events until it is over.
final class BlockingCGILink: BlockingHost {
    /// Runs the request's CGI program to its end; its body is whole.
    func run(_ r: WorkerRequest, script: CGIScript) -> ExchangeEnd {
        let cgi = ctx.config.cgi
        guard ctx.cgiGate.acquire(deadline: Host.monotonicSeconds() + cgi.queueTimeout, onWait: ctx.onWait) else {
            return ctx.cgiPlacesBusy(["request_id": "\(r.id)", "cgi": "\(script.scriptName)"])
        }
        defer { ctx.cgiGate.release() }
        guard let link = CGILink.start(ctx: ctx, record: r, script: script, body: r.body, remote: conn.remote, local: conn.local,
                                       sink: self) else { return .failed(502, []) }
        while true {
            link.tick(now: Host.monotonicSeconds())
            if link.finished { break }
            wait(link)
        }
        if link.output.failure != nil || link.output.clientGone {
            link.abandon(now: Host.monotonicSeconds())
            waitForExit(link.run, seconds: cgi.killGrace)  // a moment to go before finish() kills it
        }
        link.run.finish()
        return link.end()
    }

    /// One poll over the link's fds and the client, up to a second (a tenth once the
    /// program is being ended).
    func wait(_ link: CGILink) {
        var fds = link.watched.map { ($0.fd, $0.writable ? Poll.writable : Poll.readable) }
        fds.append((conn.fd, Poll.peerClosed))
        ctx.onWait()
        let now = Host.monotonicSeconds()
        let until = link.output.timedOut ? now + 0.1 : min(link.deadline, now + 1)
        let ms = Int32(max(0, (until - now) * 1000).rounded(.up)) + 1
        guard let ready = try? Poll.wait(fds, timeoutMilliseconds: ms) else { return }
        for (i, (fd, _)) in fds.enumerated() where ready[i] != 0 {
            if fd == conn.fd { link.clientLeft() } else { link.event(fd.rawValue, buffer: &conn.scratch) }
        }
    }

    func waitForExit(_ run: CGIRun, seconds: Double) {
        let until = Host.monotonicSeconds() + seconds
        while !run.exited {
            let left = until - Host.monotonicSeconds()
            guard left > 0 else { return }
            _ = try? run.child.exitWatch.waitReadable(timeoutMilliseconds: Int32(min(left, 1) * 1000) + 1)
            run.reapIfExited()
        }
    }
}
