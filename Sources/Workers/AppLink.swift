import GatewayConfig
import GatewaySystem
import Logging
import AppPool
import Exchanges

/// What a worker class does for an app link: the slot policy (a blocking wait, or a
/// queue with grants by signal), where the client's bytes go, and how an app
/// connection is watched. Everything else about the exchange is the link's.
protocol AppLinkHost: ClientSink {
    /// An app connection the link starts to use: a new one is registered where the host
    /// waits for events (`kept`: one from an earlier request, already registered).
    func watch(_ fd: FileDescriptor, kept: Bool) throws(SystemError)
    /// Whether a kept connection had an event while parked (the app closed it).
    func stirredWhileParked(_ fd: FileDescriptor) -> Bool
    /// The link lets go of its connection (it is parked or closed next).
    func unwatch(_ fd: FileDescriptor)
    /// Gives the slot back; true when the request counted as slow.
    func releaseSlot(_ lease: AppDispatcher.Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool) -> Bool
}

/// One FastCGI exchange (AppExchange, the engine) with its lease and its app connection,
/// driven without blocking for every worker class: `pump` carries out the engine's steps
/// until one has to wait, and says what for. The blocking workers then poll (or wait in
/// the slot queue) on their thread; the epoll worker returns to its loop and pumps again
/// on the next event. The socket work is written here once.
final class AppLink {
    enum Wait {
        /// A slot: the host acquires one (`granted`) or reports `noSlot` to the engine.
        case slot
        /// The unix socket's backlog is full (its process is being replaced): pump again shortly.
        case connectBusy
        /// An event on the app connection (`ready`), or `deadline` (`timedOut`).
        case app
        /// The client to take `ClientOutput.highWater` of queued bytes; then pump again.
        case client
        /// The exchange is over.
        case ended(ExchangeEnd)
    }

    /// How often a unix socket with a full backlog is tried again.
    static let connectRetrySeconds = 0.02

    let ctx: WorkerContext
    let record: RequestRecord
    let appIndex: Int
    let body: BufferedBody
    var x: AppExchange
    unowned let host: AppLinkHost
    private(set) var lease: AppDispatcher.Lease? = nil
    var backend: FileDescriptor? = nil
    /// A connect in progress: writable (or an error) says how it went.
    private(set) var connecting = false
    /// Readiness of the app connection as last seen: a short read or write clears it.
    private(set) var readable = false
    private(set) var writable = false
    /// When the request asked for its slot (queue wait metrics).
    var queueStart = 0.0
    /// Servers the next slot should not come from (a bit each: tries there failed).
    var avoidServer: Int64 = 0
    /// What one read from the app produced (head, body, last chunk) goes to the client in
    /// one write: three writes per small response cost the client three wake-ups.
    private var output: [UInt8] = []

    init(ctx: WorkerContext, record: RequestRecord, appIndex: Int, match: RouteMatch, body held: BufferedBody,
         remote: (address: String, port: Int), local: (address: String, port: Int), host: AppLinkHost) {
        self.ctx = ctx
        self.record = record
        self.appIndex = appIndex
        self.host = host
        // A local redirect is a GET without the body; the body is held whole (memory or a
        // temporary file), so a retry can send it again.
        body = record.redirected ? BufferedBody() : held
        let params = ctx.fastCGIParams(head: record.head, target: record.target, match: match, appIndex: appIndex, remote: remote,
                                       local: local, contentLength: record.bodyLengthKnown ? body.length : nil,
                                       secure: (record as? WorkerRequest)?.secure ?? false, serverProtocol: record.http2 ? "HTTP/2.0" : nil)
        let engineBody: AppExchange.Body = body.spool != nil ? .pieces(replayable: true) : body.memory.isEmpty ? .none : .memory(body.memory)
        x = AppExchange(app: ctx.appExchanges[appIndex], request: record.head, params: params, body: engineBody, keepAlive: record.keepAlive,
                        queuedSince: Host.monotonicSeconds(), requestStartMicros: ctx.epochMicros(record.started))
        x.gzip = record.gzip
        output.reserveCapacity(4096)
    }

    var meta: Logger.Metadata { ["request_id": "\(record.id)", "app": "\(x.app.name)"] }
    var deadline: Double { x.deadline }
    /// The host should wait for the connection to be writable too (a connect, or a full socket).
    var wantsWritable: Bool { connecting || (x.outgoingSent < x.outgoing.count && !writable) }
    /// A connect could not start (a full backlog): it is tried again at the next pump.
    private(set) var awaitsConnectRetry = false

    /// Carries out the engine's steps until one has to wait. `buffer`: the host's scratch.
    func pump(buffer: inout [UInt8]) -> Wait {
        while true {
            let step = x.next()
            ctx.log(x.takeNotes(), meta)
            switch step {
            case .acquireSlot:
                return .slot
            case .connect:
                if connecting { return .app }  // (its event is awaited)
                if let wait = connect() { return wait }
            case .discardConnection:
                if let b = detach() { try? b.close() }
            case .write:
                if write() { continue }
                // The app's socket is full: it may have answered early, so read if it can.
                guard readable, read(&buffer) == nil else { return .app }
            case .supplyBody:
                body.supply(&x, buffer: &buffer)
            case .read:
                if let wait = read(&buffer) { return wait }
            case .release(let reusable, let served, let overloaded):
                release(reusable: reusable, served: served, overloaded: overloaded)
            case .inspect(let elapsed, let end):
                inspect(elapsed: elapsed, end: end)
            case .respond, .redirect, .offload, .finished, .closeClient:
                if x.status != 0 { record.status = x.status }  // the head that went out
                return .ended(record.clientGone ? .clientGone : step.exchangeEnd!)
            }
        }
    }

    // MARK: - Reports from the host

    /// A slot was granted (at once, from the queue, or handed off by a release).
    func granted(_ l: AppDispatcher.Lease, now: Double) {
        lease = l
        ctx.recordQueueWait(app: appIndex, seconds: now - queueStart)
        var kept = false
        if let k = l.keptConnection {
            if host.stirredWhileParked(k) { try? k.close() } else { kept = adopt(k, kept: true) }
        }
        x.granted(slot: l.slot, requestID: l.requestID, kept: kept, now: now)
    }

    /// An event on the app connection (or poll's answer for it).
    func ready(readable r: Bool, writable w: Bool, failed: Bool) {
        guard connecting else {
            if r || failed { readable = true }
            if w || failed { writable = true }
            return
        }
        guard w || failed, let b = backend else { return }
        connecting = false
        let e = Socket.pendingError(b)
        if e == 0 {
            writable = true
            x.connected(now: Host.monotonicSeconds())
        } else {
            let address = lease.map { "\($0.address)" } ?? "?"
            x.connectFailed(.connect("\(address): \(SystemError(errno: e, "connect"))"), now: Host.monotonicSeconds())
        }
    }

    /// The deadline passed: a connect or the app's answer (the engine decides what next).
    /// A connect that could not start yet is only tried again until then.
    func timedOut(now: Double) {
        if awaitsConnectRetry && now < x.deadline { return }
        x.timedOut(now: now)
    }

    /// The client is gone (or the worker stops): whatever the exchange holds goes back.
    func abandon() {
        x.clientGone()
        while case .release(let reusable, let served, let overloaded) = x.next() {
            release(reusable: reusable, served: served, overloaded: overloaded)
        }
        if lease != nil { release(reusable: false, served: x.answered, overloaded: false) }
    }

    // MARK: - The socket

    /// Starts a connect; nil when the engine can go on at once (connected, or failed).
    private func connect() -> Wait? {
        awaitsConnectRetry = false
        guard let l = lease else {
            x.connectFailed(.connect("no slot"), now: Host.monotonicSeconds())
            return nil
        }
        do {
            switch try BackendConnector.startConnect(l.address) {
            case .connected(let fd):
                if adopt(fd, kept: false) { x.connected(now: Host.monotonicSeconds()) }
            case .inProgress(let fd):
                connecting = true
                if adopt(fd, kept: false) { return .app }
            case .busy:
                awaitsConnectRetry = true
                return .connectBusy
            }
        } catch {
            x.connectFailed(error, now: Host.monotonicSeconds())
        }
        return nil
    }

    /// Makes `fd` the link's connection; false (the engine told) when the host cannot watch it.
    private func adopt(_ fd: FileDescriptor, kept: Bool) -> Bool {
        backend = fd
        readable = false
        writable = !connecting
        do { try host.watch(fd, kept: kept) } catch {
            connecting = false
            x.connectFailed(.connect("cannot watch the connection: \(error)"), now: Host.monotonicSeconds())
            return false
        }
        return true
    }

    private func detach() -> FileDescriptor? {
        guard let b = backend else { return nil }
        host.unwatch(b)
        backend = nil
        return b
    }

    /// Writes what the engine has for the app; false when the socket is full.
    private func write() -> Bool {
        guard let b = backend else {
            x.writeFailed(now: Host.monotonicSeconds())
            return true
        }
        while writable && x.outgoingSent < x.outgoing.count {
            do {
                guard let n = try b.write(x.outgoing, from: x.outgoingSent), n > 0 else {
                    writable = false
                    break
                }
                x.wrote(n, now: Host.monotonicSeconds())
            } catch {
                // The app closed its side: what it sent before (an early answer) may
                // still be read; the engine reads next.
                readable = true
                x.writeFailed(now: Host.monotonicSeconds())
                return true
            }
        }
        return x.outgoingSent == x.outgoing.count
    }

    /// One read from the app, its bytes sent on to the client at once. nil when the
    /// engine can go on; otherwise what to wait for: the app, or a client with
    /// `ClientOutput.highWater` bytes unsent.
    private func read(_ buffer: inout [UInt8]) -> Wait? {
        guard let b = backend else {
            x.closed(now: Host.monotonicSeconds())
            return nil
        }
        guard host.clientBacklog < ClientOutput.highWater else { return .client }
        guard readable else { return .app }
        let got: Int?
        do { got = try b.read(into: &buffer, from: 0) } catch { got = 0 }  // a reset: like an early close
        guard let n = got else {
            readable = false
            return .app
        }
        if n == 0 {
            x.closed(now: Host.monotonicSeconds())
            return nil
        }
        if n < buffer.count { readable = false }
        x.received(buffer[0..<n], into: &output, mayKeepAlive: ctx.mayKeepAlive, date: ctx.httpDate(), now: Host.monotonicSeconds())
        guard !output.isEmpty else { return nil }
        defer { output.removeAll(keepingCapacity: true) }
        if host.sendToClient(output) {
            record.bytesSent += output.count
        } else {
            ctx.logger.info("client went away", metadata: meta)
            record.clientGone = true
            x.clientGone()
        }
        return nil
    }

    private func release(reusable: Bool, served: Bool, overloaded: Bool) {
        guard let l = lease else { return }
        if x.app.servers > 1 { serverHealth(l, served: served) }
        let keep = reusable && !connecting
        let connection = detach()
        lease = nil
        record.upstreamTime = Host.monotonicSeconds() - x.grantedAt
        if host.releaseSlot(l, connection: connection, reusable: keep, served: served, overloaded: overloaded) {
            // (The entry with the process's kernel view was written at slow_request; this
            // says how long it held the slot in the end.)
            ctx.logger.info("\(ctx.slowRequestMessage(x.app.name, record.head.method, record.target, slot: l.slot, seconds: record.upstreamTime ?? 0))",
                               metadata: meta)
        }
    }
}
