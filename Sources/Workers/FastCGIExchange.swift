import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import AppPool
import Exchanges

/// The blocking workers' driver of a FastCGI exchange (AppExchange): each step the
/// engine asks for is done with blocking calls on this thread. A body the thread worker
/// read whole, or a chunked one, is held (memory, then a temporary file) and so can be
/// sent again; a Content-Length body on the sync worker streams from the client as STDIN.
struct FastCGIExchange {
    enum Result {
        case done
        /// Nothing was sent to the client; answer with this status.
        case failed(Int, [(String, String)])
        /// The app asked for a local redirect (Location: /path, no Status).
        case localRedirect(String)
    }

    let ctx: WorkerContext
    let head: HTTPRequestHead
    let target: String
    let match: RouteMatch
    let app: AppConfig
    let appIndex: Int
    let requestID: RequestID

    var timeouts: TimeoutsConfig { ctx.config.timeouts }
    var meta: Logger.Metadata { ["request_id": "\(requestID)", "app": "\(app.name)"] }

    func run(_ conn: ClientConnection, _ parser: inout HTTPRequestParser, keepAlive: inout Bool, outcome: inout Outcome) -> Result {
        let redirected = target != head.target
        var held: BufferedBody? = nil
        defer { held?.close() }
        var bodyLength: UInt64? = nil
        var streamed = false
        if !redirected {
            switch head.framing {
            case .none: break
            case .contentLength(let n):
                bodyLength = n
                held = conn.takePreread()  // read whole by the thread worker's loop
                streamed = held == nil && n > 0
            case .chunked:
                // Held first (memory, then a temporary file): most apps (php-fpm) need CONTENT_LENGTH.
                if head.expectContinue { try? conn.write(HTTPResponseWriter.continueHead, timeout: timeouts.send) }
                do {
                    let body = try holdChunkedBody(conn, &parser)
                    held = body
                    bodyLength = body.length
                } catch let e as BodyError {
                    keepAlive = false
                    return .failed(e.status, [])
                } catch {
                    keepAlive = false
                    ctx.logger.error("cannot hold the request body: \(error)", metadata: meta)
                    return .failed(500, [])
                }
            }
            if head.expectContinue, case .contentLength(let n) = head.framing, n > 0 {
                try? conn.write(HTTPResponseWriter.continueHead, timeout: timeouts.send)
            }
        }
        let params = ctx.fastCGIParams(head: head, target: target, match: match, app: app, appIndex: appIndex, remote: conn.remote, local: conn.local,
                                       contentLength: bodyLength)
        let body: AppExchange.Body
        if streamed {
            body = .pieces(replayable: false)
        } else if let h = held, h.spool != nil {
            body = .pieces(replayable: true)
        } else {
            body = held.map { $0.memory.isEmpty ? .none : .memory($0.memory) } ?? .none
        }
        var x = AppExchange(app: ctx.appExchanges[appIndex], request: head, params: params, body: body, keepAlive: keepAlive)
        var driver = Driver(ctx: ctx, appIndex: appIndex, meta: meta, head: head, target: target)
        defer { driver.abandon(&x) }
        let result = driver.drive(&x, conn, &parser, held: held, keepAlive: &keepAlive, outcome: &outcome)
        if x.status != 0 { outcome.status = x.status }
        return result
    }

    /// A chunked body, held whole (memory, then an unlinked temporary file).
    func holdChunkedBody(_ conn: ClientConnection, _ parser: inout HTTPRequestParser) throws -> BufferedBody {
        if let ready = conn.takePreread() { return ready }
        var body = BufferedBody()
        do {
            try ClientBody.read(conn, &parser, timeout: timeouts.body, total: timeouts.bodyTotal) { piece in try body.append(piece) }
        } catch {
            body.close()
            throw error
        }
        return body
    }
}

/// The lease, the app connection and the buffers of one blocking exchange.
private struct Driver {
    let ctx: WorkerContext
    let appIndex: Int
    let meta: Logger.Metadata
    let head: HTTPRequestHead
    let target: String
    var lease: AppDispatcher.Lease? = nil
    var backend: FileDescriptor? = nil
    var buffer = [UInt8].readBuffer(65536)
    /// What one read from the app produced (head, body, last chunk) goes to the client in
    /// one write: three writes per small response cost the client three wake-ups.
    var pending: [UInt8] = []

    init(ctx: WorkerContext, appIndex: Int, meta: Logger.Metadata, head: HTTPRequestHead, target: String) {
        self.ctx = ctx
        self.appIndex = appIndex
        self.meta = meta
        self.head = head
        self.target = target
        pending.reserveCapacity(4096)
    }

    var timeouts: TimeoutsConfig { ctx.config.timeouts }

    mutating func drive(_ x: inout AppExchange, _ conn: ClientConnection, _ parser: inout HTTPRequestParser, held: BufferedBody?,
                        keepAlive: inout Bool, outcome: inout Outcome) -> FastCGIExchange.Result {
        while true {
            let step = x.next()
            ctx.log(x.takeNotes(), meta)
            switch step {
            case .acquireSlot:
                let start = Host.monotonicSeconds()
                switch ctx.dispatcher.acquire(app: appIndex, deadline: start + x.app.queueTimeout, onWait: ctx.onWait) {
                case .success(let l):
                    let now = Host.monotonicSeconds()
                    ctx.recordQueueWait(app: appIndex, seconds: now - start)
                    lease = l
                    backend = l.keptConnection
                    x.granted(slot: l.slot, requestID: l.requestID, kept: l.keptConnection != nil, now: now)
                case .failure(let why):
                    x.noSlot(why == .queueFull ? .queueFull : .queueTimedOut)
                }
            case .connect:
                guard let l = lease else { return .failed(500, []) }
                do {
                    backend = try BackendConnector.connect(l.address, timeout: timeouts.backendConnect)
                    x.connected(now: Host.monotonicSeconds())
                } catch {
                    x.connectFailed(error, now: Host.monotonicSeconds())
                }
            case .discardConnection:
                try? backend?.close()
                backend = nil
            case .write:
                writeOutgoing(&x)
            case .supplyBody:
                supplyBody(&x, conn, &parser, held: held)
            case .read:
                if !readApp(&x) { continue }
                guard pending.isEmpty || writeClient(conn, &outcome) else {
                    x.clientGone()
                    continue
                }
            case .release(let reusable, let served, let overloaded):
                release(reusable: reusable, served: served, overloaded: overloaded, &x, &outcome)
            case .respond(let status, let retryAfter):
                return .failed(status, retryAfter.map { [("Retry-After", $0)] } ?? [])
            case .redirect(let location):
                return .localRedirect(location)
            case .finished(let keep):
                keepAlive = keep
                return .done
            case .closeClient:
                keepAlive = false
                return .done
            }
        }
    }

    /// Writes all of `outgoing`, waiting for room when the app reads slowly.
    mutating func writeOutgoing(_ x: inout AppExchange) {
        guard let b = backend else { return x.writeFailed(now: Host.monotonicSeconds()) }
        while x.outgoingSent < x.outgoing.count {
            do {
                if let n = try b.write(x.outgoing, from: x.outgoingSent), n > 0 {
                    x.wrote(n, now: Host.monotonicSeconds())
                    continue
                }
                guard try b.waitWritable(timeoutMilliseconds: Int32(timeouts.backendRead * 1000)) else {
                    return x.timedOut(now: Host.monotonicSeconds())
                }
                ctx.onWait()
            } catch {
                return x.writeFailed(now: Host.monotonicSeconds())
            }
        }
    }

    /// The body as STDIN records: from the held file, or streamed from the client.
    mutating func supplyBody(_ x: inout AppExchange, _ conn: ClientConnection, _ parser: inout HTTPRequestParser, held: BufferedBody?) {
        if let spool = held?.spool {
            let n = (try? spool.pread(into: &buffer, at: Int(x.bodyOffset))) ?? 0
            if n > 0 { x.bodyPiece(buffer[0..<n]) } else { x.bodyEnd() }
            return
        }
        guard case .contentLength = head.framing, target == head.target else { return x.bodyEnd() }
        do {
            try ClientBody.read(conn, &parser, timeout: timeouts.body, total: timeouts.bodyTotal) { piece in
                x.bodyPiece(piece)
                writeOutgoing(&x)
                if !x.wantsBody { throw UpstreamError.closedEarly }  // the app went away or timed out
            }
            x.bodyEnd()
        } catch let e as BodyError {
            x.bodyFailed(status: e.status)
        } catch {
            x.writeFailed(now: Host.monotonicSeconds())
        }
    }

    /// One read from the app, waiting up to the engine's deadline a second at a time (the
    /// worker's heartbeat stays fresh). False when nothing came (the engine decides).
    mutating func readApp(_ x: inout AppExchange) -> Bool {
        guard let b = backend else {
            x.closed(now: Host.monotonicSeconds())
            return false
        }
        while true {
            let left = x.deadline - Host.monotonicSeconds()
            if left <= 0 {
                x.timedOut(now: Host.monotonicSeconds())
                return false
            }
            ctx.onWait()
            if (try? b.waitReadable(timeoutMilliseconds: Int32(min(left, 1) * 1000) + 1)) ?? true { break }
        }
        // A read error is a reset: the same as a close. nil: a wake-up with nothing to read.
        let got: Int?
        do { got = try b.read(into: &buffer, from: 0) } catch { got = 0 }
        guard let n = got else { return false }
        if n == 0 {
            x.closed(now: Host.monotonicSeconds())
            return false
        }
        x.received(buffer[0..<n], into: &pending, mayKeepAlive: ctx.mayKeepAlive, date: ctx.httpDate(), now: Host.monotonicSeconds())
        return true
    }

    mutating func writeClient(_ conn: ClientConnection, _ outcome: inout Outcome) -> Bool {
        defer { pending.removeAll(keepingCapacity: true) }
        do {
            try conn.write(pending, timeout: timeouts.send)
            outcome.bytesSent += pending.count
            return true
        } catch {
            ctx.logger.info("client went away: \(error)", metadata: meta)
            outcome.clientGone = true
            return false
        }
    }

    mutating func release(reusable: Bool, served: Bool, overloaded: Bool, _ x: inout AppExchange, _ outcome: inout Outcome) {
        guard let l = lease else { return }
        let connection = backend
        lease = nil
        backend = nil
        outcome.upstreamTime = Host.monotonicSeconds() - x.grantedAt
        if ctx.dispatcher.release(l, connection: connection, reusable: reusable, served: served, overloaded: overloaded) {
            ctx.logger.warning("\(ctx.slowRequestMessage(x.app.name, head.method, target, slot: l.slot, seconds: outcome.upstreamTime ?? 0))",
                               metadata: meta)
        }
    }

    /// Whatever the exchange still holds goes back (a step the loop returned before).
    mutating func abandon(_ x: inout AppExchange) {
        guard let l = lease else { return }
        ctx.dispatcher.release(l, connection: backend, reusable: false, served: x.answered)
        lease = nil
        backend = nil
    }
}
