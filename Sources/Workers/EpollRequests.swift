import CGIProtocol
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's side of a request the session routes: a page or a static file
/// answered here, or an exchange (FastCGI, CGI) started, whose end goes back to the session.
extension EpollWorker {
    /// Sends the request where it goes (again after a local redirect).
    func route(_ c: EpollClient, _ r: EpollRequest) {
        let destination = ctx.route(r, peer: c.remote)
        if let (status, bytes) = ctx.answer(destination, for: r, into: &c.out) { return c.session.answered(status: status, bytes: bytes) }
        switch destination {
        case .refuse(let status, let headers):
            c.session.refuse(status, headers, ctx)
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
        default:
            break
        }
    }

    /// The request is in hand, its body whole: the exchange takes it from here.
    func startExchange(_ c: EpollClient, _ r: EpollRequest) {
        c.phase = .upstream  // until the exchange ends (`exchangeEnded`)
        r.cgi != nil ? startCGI(c, r) : startApp(c, r)
    }

    /// The exchange is over (its response queued, or not begun): the session goes on.
    func exchangeEnded(_ c: EpollClient, _ end: ExchangeEnd) {
        c.phase = .session
        c.session.exchangeEnded(end, ctx)
        drive(c)
    }
}
