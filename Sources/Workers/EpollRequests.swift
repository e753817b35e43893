import CGIProtocol
import GatewaySystem
import HTTPWire
import Exchanges

/// The epoll worker's requests from head to response: route, read the body, hand it to
/// an exchange (static, FastCGI, CGI, pages), answer errors, and hand the finished
/// response to the output side (EpollClientOutput).
extension EpollWorker {
    func startRequest(_ c: EpollClient, _ head: HTTPRequestHead) {
        let now = Host.monotonicSeconds()
        let keep = head.keepAlive && ctx.config.server.keepalive > 0 && ctx.mayKeepAlive
        let r = EpollRequest(head: head, requestID: ctx.nextRequestID(), started: now, keepAlive: keep)
        c.request = r
        route(c, r)
    }

    /// Sends the request where it goes (again after a local redirect).
    func route(_ c: EpollClient, _ r: EpollRequest) {
        var label = ""
        let destination = ctx.destination(method: r.head.method, target: r.target, client: ctx.clientPeer(c.remote, head: r.head).address,
                                          label: &label)
        if r.metricsLabel == nil { r.metricsLabel = label }  // the first routing's, as the blocking pipeline
        switch destination {
        case .refuse(let status, let headers):
            respondError(c, r, status, headers)
        case .page(let p):
            let keep = r.keepAlive && (!r.hasBody || r.bodyDone)
            r.status = 200
            finishRequest(c, r, appending: ctx.page(p, method: r.head.method, target: r.target, keepAlive: keep), keep: keep)
        case .staticFile(let file):
            sendStatic(c, r, file)
        case .cgi(let script):
            r.cgi = script
            r.app = nil
            readBodyThen(c, r)
        case .app(let app, let index, let match):
            r.cgi = nil
            r.app = app
            r.appIndex = index
            r.match = match
            readBodyThen(c, r)
        }
    }

    /// Reads the body (unless it is in hand), then goes on with `requestBodyRead`.
    func readBodyThen(_ c: EpollClient, _ r: EpollRequest) {
        if !r.redirected && r.hasBody && !r.bodyDone {
            c.phase = .body
            if r.head.expectContinue { queueOutput(c, HTTPResponseWriter.continueHead[...]) }
            c.intake.startBody(now: Host.monotonicSeconds())
            setDeadline(c, c.intake.deadline)
            advance(c)
        } else {
            requestBodyRead(c, r)
        }
    }

    /// The request is in hand: its CGI variables, then the engine takes it from there.
    func requestBodyRead(_ c: EpollClient, _ r: EpollRequest) {
        if r.cgi != nil { return startCGI(c, r) }
        guard let app = r.app, let match = r.match else { return respondError(c, r, 500) }
        let length: UInt64? = r.redirected || r.head.framing == .none ? nil : r.bodyLength
        let params = ctx.fastCGIParams(head: r.head, target: r.target, match: match, app: app, appIndex: r.appIndex,
                                       remote: c.remote, local: c.local, contentLength: length)
        // The body is held whole (memory or a temporary file), so a retry can send it again.
        let body: AppExchange.Body = r.redirected ? .none : r.spool != nil ? .pieces(replayable: true)
            : r.body.memory.isEmpty ? .none : .memory(r.body.memory)
        r.exchange = AppExchange(app: ctx.appExchanges[r.appIndex], request: r.head, params: params, body: body, keepAlive: r.keepAlive)
        driveApp(c, r)
    }

    /// Answers with an error page. The connection stays open only if the request was
    /// read whole.
    func respondError(_ c: EpollClient, _ r: EpollRequest, _ status: Int, _ headers: [(String, String)] = [],
                      keep: Bool = true, logVersion: String? = nil) {
        let whole = !r.hasBody || r.bodyDone
        if !whole { c.lingerOnClose = true }
        let k = keep && r.keepAlive && whole
        let page = ResponseHead.error(status, keepAlive: k, date: ctx.httpDate(), extraHeaders: headers, isHead: r.head.method == "HEAD")
        r.status = status
        finishRequest(c, r, appending: page, keep: k, logVersion: logVersion)
    }

    /// The request is over (its response is queued, maybe not yet written): log it,
    /// count it, then flush and go on to the next request or close.
    func finishRequest(_ c: EpollClient, _ r: EpollRequest, appending bytes: [UInt8] = [], keep: Bool, logVersion: String? = nil) {
        if !bytes.isEmpty {
            r.bytesSent += bytes.count
            queueOutput(c, bytes[...], flush: false)
        }
        r.logVersion = logVersion
        c.sending = r  // logged once the client has it all (or has gone: 499)
        ctx.requestFinished()
        r.closeSpool()
        c.request = nil
        // Kept even while draining: the response said keep-alive (see WorkerContext.idleDeadline).
        // One we end after Connection: close is shut first and read until the client closes.
        c.keepAfterFlush = keep
        if !keep && ctx.closedByDrain(r.head) { c.lingerOnClose = true }
        c.phase = .flushing
        setDeadline(c, Host.monotonicSeconds() + timeouts.send)
        flushClient(c)
    }

    func logAccess(_ c: EpollClient, _ r: EpollRequest) {
        guard ctx.accessLog != nil || ctx.config.server.metricsPath != nil else { return }
        ctx.logAccess(remote: c.remote.address, method: r.head.method, target: r.head.target,
                      version: r.logVersion ?? r.head.version.description, status: r.status, bytes: r.bytesSent,
                      started: r.started, upstream: r.upstreamTime, rid: r.requestID, head: r.head, label: r.metricsLabel)
    }
}
