import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import AppPool
import Exchanges

/// The blocking workers' driver of a FastCGI exchange (AppExchange): each step the
/// engine asks for is done with blocking calls on this thread. The body is whole by now
/// (the session read it), in memory or a temporary file, so a retry can send it again.
struct FastCGIExchange {
    let ctx: WorkerContext
    let record: RequestRecord
    let match: RouteMatch
    let app: AppConfig
    let appIndex: Int

    var meta: Logger.Metadata { ["request_id": "\(record.id)", "app": "\(app.name)"] }

    func run(_ conn: ClientConnection) -> ExchangeEnd {
        let r = record
        let held = r.redirected ? BufferedBody() : conn.body
        let params = ctx.fastCGIParams(head: r.head, target: r.target, match: match, app: app, appIndex: appIndex, remote: conn.remote,
                                       local: conn.local, contentLength: r.bodyLengthKnown ? held.length : nil)
        let body: AppExchange.Body = held.spool != nil ? .pieces(replayable: true) : held.memory.isEmpty ? .none : .memory(held.memory)
        var x = AppExchange(app: ctx.appExchanges[appIndex], request: r.head, params: params, body: body, keepAlive: r.keepAlive)
        var driver = Driver(ctx: ctx, appIndex: appIndex, meta: meta, record: r)
        defer { driver.abandon(&x) }
        let end = driver.drive(&x, conn, held: held)
        if x.status != 0 { r.status = x.status }
        return r.clientGone ? .clientGone : end
    }
}

/// The lease, the app connection and the buffers of one blocking exchange.
private struct Driver {
    let ctx: WorkerContext
    let appIndex: Int
    let meta: Logger.Metadata
    let record: RequestRecord
    var lease: AppDispatcher.Lease? = nil
    var backend: FileDescriptor? = nil
    var buffer = [UInt8].readBuffer(65536)
    /// What one read from the app produced (head, body, last chunk) goes to the client in
    /// one write: three writes per small response cost the client three wake-ups.
    var pending: [UInt8] = []

    init(ctx: WorkerContext, appIndex: Int, meta: Logger.Metadata, record: RequestRecord) {
        self.ctx = ctx
        self.appIndex = appIndex
        self.meta = meta
        self.record = record
        pending.reserveCapacity(4096)
    }

    var timeouts: TimeoutsConfig { ctx.config.timeouts }

    mutating func drive(_ x: inout AppExchange, _ conn: ClientConnection, held: BufferedBody) -> ExchangeEnd {
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
                guard let l = lease else { return .failed(500, []) }  // (the engine asks for a slot first)
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
                held.supply(&x, buffer: &buffer)
            case .read:
                if !readApp(&x) { continue }
                guard pending.isEmpty || writeClient(conn) else {
                    x.clientGone()
                    continue
                }
            case .release(let reusable, let served, let overloaded):
                release(reusable: reusable, served: served, overloaded: overloaded, &x)
            case .respond, .redirect, .finished, .closeClient:
                return step.exchangeEnd!
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

    mutating func writeClient(_ conn: ClientConnection) -> Bool {
        defer { pending.removeAll(keepingCapacity: true) }
        do {
            try conn.write(pending, timeout: timeouts.send)
            record.bytesSent += pending.count
            return true
        } catch {
            ctx.logger.info("client went away: \(error)", metadata: meta)
            record.clientGone = true
            return false
        }
    }

    mutating func release(reusable: Bool, served: Bool, overloaded: Bool, _ x: inout AppExchange) {
        guard let l = lease else { return }
        let connection = backend
        lease = nil
        backend = nil
        record.upstreamTime = Host.monotonicSeconds() - x.grantedAt
        if ctx.dispatcher.release(l, connection: connection, reusable: reusable, served: served, overloaded: overloaded) {
            ctx.logger.warning("\(ctx.slowRequestMessage(x.app.name, record.head.method, record.target, slot: l.slot, seconds: record.upstreamTime ?? 0))",
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
