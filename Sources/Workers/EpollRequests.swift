import CGIProtocol
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's side of a request the session routes: a page or a static file
/// answered here, or an exchange (FastCGI, CGI) started, whose end goes back to the session.
extension EpollWorker {
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
