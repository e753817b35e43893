import CGIProtocol
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's side of a request the session routes: a page or a static file
/// answered here, or an exchange (FastCGI, CGI) started, whose end goes back to the session.
extension EpollWorker {
    /// Sends the request where it goes (again after a local redirect).
    func route(_ c: EpollClient, _ r: EpollRequest) {
        switch ctx.route(r, peer: c.remote) {
        case .refuse(let status, let headers):
            c.session.refuse(status, headers, ctx)
        case .page(let p):
            let page = ctx.page(p, for: r)
            queueOutput(c, page[...], flush: false)
            c.session.answered(status: 200, bytes: page.count)
        case .staticFile(let file):
            let reply = ctx.staticResponse(file, for: r)
            queueOutput(c, reply.head[...], flush: false)
            if let body = reply.body {
                c.file = file.fd
                c.fileOffset = Int(body.offset)
                c.fileEnd = Int(body.offset + body.length)
            } else {
                try? file.fd.close()
            }
            c.session.answered(status: reply.status, bytes: reply.head.count + Int(reply.body?.length ?? 0))
        case .cgi(let script):
            r.cgi = script
            r.app = nil
            c.session.forward(now: Host.monotonicSeconds())
        case .app(let app, let index, let match):
            r.cgi = nil
            r.app = app
            r.appIndex = index
            r.match = match
            c.session.forward(now: Host.monotonicSeconds())
        }
    }

    /// The request is in hand, its body whole: the exchange takes it from here.
    func startExchange(_ c: EpollClient, _ r: EpollRequest) {
        c.phase = .upstream  // until the exchange ends (`exchangeEnded`)
        if r.cgi != nil { return startCGI(c, r) }
        guard let app = r.app, let match = r.match else { return exchangeEnded(c, .failed(500, [])) }
        let params = ctx.fastCGIParams(head: r.head, target: r.target, match: match, app: app, appIndex: r.appIndex,
                                       remote: c.remote, local: c.local, contentLength: r.bodyLengthKnown ? r.body.length : nil)
        // The body is held whole (memory or a temporary file), so a retry can send it again.
        let body: AppExchange.Body = r.redirected ? .none : r.spool != nil ? .pieces(replayable: true)
            : r.body.memory.isEmpty ? .none : .memory(r.body.memory)
        r.exchange = AppExchange(app: ctx.appExchanges[r.appIndex], request: r.head, params: params, body: body, keepAlive: r.keepAlive)
        driveApp(c, r)
    }

    /// The exchange is over (its response queued, or not begun): the session goes on.
    func exchangeEnded(_ c: EpollClient, _ end: ExchangeEnd) {
        c.request?.exchange = nil
        c.phase = .session
        c.session.exchangeEnded(end, ctx)
        drive(c)
    }
}
