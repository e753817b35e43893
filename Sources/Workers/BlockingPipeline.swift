import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import AppPool
import Exchanges

/// The request pipeline for blocking workers: read a request, route it, forward it to
/// its FastCGI app, stream the response back. The sync worker runs it inline; the
/// thread worker reads heads in its loop and runs `handle` on pool threads. Failure semantics follow design.md §4.
public struct BlockingPipeline {
    let ctx: WorkerContext

    public init(context: WorkerContext) { ctx = context }

    var timeouts: TimeoutsConfig { ctx.config.timeouts }

    /// Serves requests on `conn` until the connection should close.
    public func serve(_ conn: ClientConnection) {
        var intake = RequestIntake(limits: ctx.limits, timeouts: ctx.intakeTimeouts, now: Host.monotonicSeconds(), capIdle: ctx.idleDeadline)
        while let head = readHead(conn, &intake) {
            let keep = handle(head, conn, &intake.parser)
            ctx.requestFinished()
            // A connection that said keep-alive stays, even while draining (see
            // WorkerContext.idleDeadline); one we end after a Connection: close is shut
            // for writing first and read until the client closes, so a request it sent
            // behind the response is never answered with a reset.
            if !keep {
                conn.lingerOnClose = intake.parser.leftBodyUnread || ctx.closedByDrain(head)
                return
            }
            intake.awaitNextRequest(now: Host.monotonicSeconds(), capIdle: ctx.idleDeadline)
        }
    }

    // MARK: - Reading the head

    /// The next request head, or nil when the connection should close (EOF, idle
    /// keep-alive timeout, a bad request already answered, 408 already sent). The
    /// deadlines are the intake's, as in the thread and epoll workers.
    func readHead(_ conn: ClientConnection, _ intake: inout RequestIntake) -> HTTPRequestHead? {
        let start = Host.monotonicSeconds()
        while true {
            do {
                if try conn.takeProxyHeader() {
                    let step = try intake.nextHead(conn.unconsumed, now: Host.monotonicSeconds())
                    conn.consume(step.consumed)
                    if let head = step.head { return head }
                }
            } catch {
                answerBadRequest(conn, error, started: start)
                return nil
            }
            intake.capIdleDeadline(ctx.idleDeadline)  // a drain that began during the wait
            do {
                guard try conn.fill(deadline: intake.deadline) else { return nil }
            } catch ClientError.timeout {
                if intake.expiry == .respond408 {
                    try? conn.write(ResponseHead.error(408, keepAlive: false, date: ctx.httpDate()), timeout: 1)
                }
                return nil
            } catch {
                return nil
            }
        }
    }

    /// A request that cannot be parsed: its status, a log line, and the connection closes.
    func answerBadRequest(_ conn: ClientConnection, _ error: HTTPParseError, started: Double) {
        ctx.logger.info("bad request from \(conn.remote.address): \(error.message)")
        conn.lingerOnClose = true  // what follows the bad bytes is still coming
        try? conn.write(ResponseHead.error(error.status, keepAlive: false, date: ctx.httpDate()), timeout: timeouts.send)
        logAccess(conn, method: "-", target: "-", version: "-", status: error.status, bytes: 0, started: started, upstream: nil, rid: ctx.nextRequestID(), head: nil)
    }

    // MARK: - One request

    /// Handles one request; returns whether the connection may carry another. A body
    /// left partly unread (an app that answered an upload early) ends the connection:
    /// what follows in the socket is the rest of the body, not a next request.
    func handle(_ head: HTTPRequestHead, _ conn: ClientConnection, _ parser: inout HTTPRequestParser) -> Bool {
        serveRequest(head, conn, &parser) && !parser.leftBodyUnread
    }

    func serveRequest(_ head: HTTPRequestHead, _ conn: ClientConnection, _ parser: inout HTTPRequestParser) -> Bool {
        let started = Host.monotonicSeconds()
        let rid = ctx.nextRequestID()
        var keepAlive = head.keepAlive && ctx.config.server.keepalive > 0 && ctx.mayKeepAlive
        let bodyless = head.framing == .none || head.framing == .contentLength(0)
        var outcome = Outcome(status: 0, bytesSent: 0, upstreamTime: nil)
        var label: String? = nil  // the first routing's, for /metrics
        defer {
            logAccess(conn, method: head.method, target: head.target, version: head.version.description,
                      status: outcome.loggedStatus, bytes: outcome.bytesSent, started: started, upstream: outcome.upstreamTime, rid: rid,
                      head: head, label: label)
        }

        /// Sends a whole response made here; returns whether the connection may go on.
        func sendPage(_ status: Int, _ page: [UInt8], keep: Bool) -> Bool {
            outcome.status = status
            outcome.bytesSent = page.count
            do { try conn.write(page, timeout: timeouts.send) } catch {
                outcome.clientGone = true
                return false
            }
            return keep
        }

        /// Answers with an error page; the connection stays open only if no body is left unread.
        func fail(_ status: Int, _ headers: [(String, String)] = []) -> Bool {
            let keep = keepAlive && bodyless
            return sendPage(status, ResponseHead.error(status, keepAlive: keep, date: ctx.httpDate(), extraHeaders: headers,
                                                       isHead: head.method == "HEAD"), keep: keep)
        }

        var target = head.target
        let client = ctx.clientPeer(conn.remote, head: head).address
        var redirects = LocalRedirects()
        while true {
            let result: FastCGIExchange.Result
            var routeLabel = ""
            let destination = ctx.destination(method: head.method, target: target, client: client, label: &routeLabel)
            if label == nil { label = routeLabel }
            switch destination {
            case .refuse(let status, let headers):
                return fail(status, headers)
            case .page(let p):
                return sendPage(200, ctx.page(p, method: head.method, target: target, keepAlive: keepAlive && bodyless), keep: keepAlive && bodyless)
            case .staticFile(let file):
                return sendStatic(file, head, conn, keepAlive: keepAlive && bodyless, outcome: &outcome)
            case .app(let app, let index, let match):
                let exchange = FastCGIExchange(ctx: ctx, head: head, target: target, match: match, app: app, appIndex: index, requestID: rid)
                result = exchange.run(conn, &parser, keepAlive: &keepAlive, outcome: &outcome)
                // An app may redirect before it read the whole body: then the connection closes.
                if case .localRedirect = result { keepAlive = keepAlive && bodyless }
            case .cgi(let script):
                let exchange = CGIExchange(ctx: ctx, head: head, target: target, script: script, requestID: rid)
                result = exchange.run(conn, &parser, keepAlive: &keepAlive, outcome: &outcome)
            }
            switch result {
            case .done:
                return keepAlive
            case .failed(let status, let headers):
                return fail(status, headers)
            case .localRedirect(let location):
                let (allowed, note) = redirects.follow(location)
                ctx.log([note], ["request_id": "\(rid)"])
                guard allowed else { return fail(500) }
                target = location
            }
        }
    }

    /// A static file: its head, then its bytes by sendfile. Returns whether the connection may go on.
    func sendStatic(_ file: StaticFile, _ head: HTTPRequestHead, _ conn: ClientConnection, keepAlive: Bool, outcome: inout Outcome) -> Bool {
        defer { try? file.fd.close() }
        let reply = StaticResponse.make(request: head, file: file, keepAlive: keepAlive, date: ctx.httpDate())
        outcome.status = reply.status
        do {
            try conn.write(reply.head, timeout: timeouts.send, more: reply.body != nil)
            outcome.bytesSent = reply.head.count
            if let body = reply.body {
                var sent: UInt64 = 0
                defer { outcome.bytesSent += Int(sent) }
                try conn.sendFile(file.fd, offset: body.offset, length: body.length, timeout: timeouts.send, sent: &sent)
            }
        } catch {
            outcome.clientGone = true
            return false
        }
        return keepAlive
    }

    func logAccess(_ conn: ClientConnection, method: String, target: String, version: String, status: Int, bytes: Int,
                   started: Double, upstream: Double?, rid: RequestID, head: HTTPRequestHead?, label: String? = nil) {
        ctx.logAccess(remote: conn.remote.address, method: method, target: target, version: version, status: status,
                      bytes: bytes, started: started, upstream: upstream, rid: rid, head: head, label: label)
    }
}

/// What a request produced, for the access log.
struct Outcome {
    var status: Int
    var bytesSent: Int
    var upstreamTime: Double?
    /// The client went away before its response was complete.
    var clientGone = false
    /// What the access log and the metrics say: 499 (nginx's "client closed request")
    /// for a response the client did not take whole, whatever it had started as. The
    /// epoll worker follows the same rule (EpollWorker.clientGone).
    var loggedStatus: Int { clientGone ? 499 : status }
}

/// The client broke off or sent a bad body: answer with this status (nothing was sent yet).
struct BodyError: Error { let status: Int }

/// Reading a request body with blocking I/O, for the FastCGI and CGI exchanges.
enum ClientBody {
    /// The client broke off or sent a bad body: answer with this status (nothing was sent yet).

    /// Reads the request body through the parser, handing each piece to `sink` as it
    /// arrives (the body is never held whole). `timeout` bounds each wait, `total` the
    /// whole body (timeouts.body_total): one byte every few seconds cannot hold a sync
    /// worker for ever. Client trouble throws BodyError (408 past either); errors from
    /// `sink` pass through. (A body the thread worker's loop already read is taken from
    /// `conn.preread` by the exchanges instead.)
    static func read(_ conn: ClientConnection, _ parser: inout HTTPRequestParser, timeout: Double, total: Double,
                     into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        let end = Host.monotonicSeconds() + total
        while true {
            let step: HTTPParseStep
            do { step = try parser.parse(conn.unconsumed) } catch { throw BodyError(status: error.status) }
            switch step.event {
            case .body(let r):
                let base = conn.unconsumed.startIndex
                try sink(conn.buffer[(base + r.lowerBound)..<(base + r.upperBound)])
                conn.consume(step.consumed)
            case .end:
                conn.consume(step.consumed)
                return
            default:
                conn.consume(step.consumed)
                guard step.consumed == 0 else { continue }
                let more: Bool
                do {
                    more = try conn.fill(deadline: min(Host.monotonicSeconds() + timeout, end))
                } catch ClientError.timeout {
                    throw BodyError(status: 408)
                } catch {
                    throw BodyError(status: 400)
                }
                guard more else { throw BodyError(status: 400) }
            }
        }
    }

}
