import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import AppPool
import Exchanges

/// One request forwarded to a FastCGI app with blocking I/O: params, the body streamed
/// as STDIN (never held whole in memory), then STDOUT streamed to the client.
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
    let requestID: String

    var timeouts: TimeoutsConfig { ctx.config.timeouts }
    var meta: Logger.Metadata { ["request_id": "\(requestID)", "app": "\(app.name)"] }

    func run(_ conn: ClientConnection, _ parser: inout HTTPRequestParser, keepAlive: inout Bool, outcome: inout Outcome) -> Result {
        guard let appIndex = ctx.appIndex(app.name) else { return .failed(500, []) }
        let redirected = target != head.target
        // A chunked body is buffered first (memory, then a temporary file): most apps
        // (php-fpm) need CONTENT_LENGTH.
        var spool: BufferedBody? = nil
        defer { spool?.close() }
        var bodyLength: UInt64? = nil
        if !redirected {
            switch head.framing {
            case .none: break
            case .contentLength(let n):
                bodyLength = n
                spool = conn.takePreread()  // read whole by the thread worker's loop: replayable
            case .chunked:
                if head.expectContinue { try? conn.write(HTTPResponseWriter.continueHead, timeout: timeouts.send) }
                do {
                    let body = try spoolChunkedBody(conn, &parser)
                    spool = body
                    bodyLength = body.length
                } catch let e as BodyError {
                    keepAlive = false
                    return .failed(e.status, [])
                } catch {
                    keepAlive = false
                    ctx.logger.error("cannot spool the request body: \(error)", metadata: meta)
                    return .failed(500, [])
                }
            }
            if head.expectContinue, case .contentLength(let n) = head.framing, n > 0 {
                try? conn.write(HTTPResponseWriter.continueHead, timeout: timeouts.send)
            }
        }

        let params = CGIEnvironment.build(head: redirectedHead(), context: cgiContext(remote: conn.remote, local: conn.local, contentLength: bodyLength))
        // A body streamed from the client cannot be sent twice: such a request never
        // rides on a kept connection and is never retried on another slot.
        let replayable = redirected || spool != nil || bodyLength == nil || bodyLength == 0
        let idempotent = ["GET", "HEAD", "OPTIONS"].contains(head.method)
        var tries = 0
        slots: while true {
            tries += 1
            let queueStart = Host.monotonicSeconds()
            let lease: AppDispatcher.Lease
            switch ctx.dispatcher.acquire(app: appIndex, deadline: queueStart + app.queueTimeout, onWait: ctx.onWait) {
            case .success(let l):
                lease = l
                ctx.recordQueueWait(app: appIndex, seconds: Host.monotonicSeconds() - queueStart)
            case .failure(let why):
                let (decision, note) = UpstreamPolicy.decide(why == .queueFull ? .queueFull : .queueTimedOut, AttemptState(
                    tries: tries, slot: -1, reusedConnection: false, replayable: replayable, idempotent: idempotent, headSent: false),
                    app: app.name, slotCount: app.slotCount, queueTimeout: app.queueTimeout)
                ctx.log([note], meta)
                return answer(decision, &keepAlive)
            }
            var kept = lease.keptConnection
            if !replayable, let k = kept {
                // A streamed body cannot be sent twice, so it never rides on a kept connection.
                try? k.close()
                kept = nil
            }
            let upstreamStart = Host.monotonicSeconds()
            while true {  // on this slot: once, or again on a new connection
                let reused = kept != nil
                let (attempt, backend) = send(kept, lease, conn, &parser, spool: spool, params: params, keepAlive: &keepAlive, outcome: &outcome)
                kept = nil
                outcome.upstreamTime = Host.monotonicSeconds() - upstreamStart
                switch attempt {
                case .finished(let result, let reusable):
                    if ctx.dispatcher.release(lease, connection: backend, reusable: reusable, served: true) {
                        ctx.logger.warning("app \(app.name): slow request: \(head.method) \(target) held slot \(lease.slot) for \(Int((outcome.upstreamTime ?? 0) * 1000)) ms", metadata: meta)
                    }
                    return result
                case .failed(let failure, let headSent):
                    let (decision, note) = UpstreamPolicy.decide(failure, AttemptState(
                        tries: tries, slot: lease.slot, reusedConnection: reused, replayable: replayable, idempotent: idempotent,
                        headSent: headSent), app: app.name, slotCount: app.slotCount, queueTimeout: app.queueTimeout)
                    ctx.log([note], meta)
                    if decision == .reconnect {
                        try? backend?.close()
                        continue
                    }
                    if case .anotherSlot(let overloaded) = decision {
                        ctx.dispatcher.release(lease, connection: backend, reusable: false, served: false, overloaded: overloaded)
                        continue slots
                    }
                    ctx.dispatcher.release(lease, connection: backend, reusable: false, served: false, overloaded: failure == .overloaded)
                    return answer(decision, &keepAlive)
                }
            }
        }
    }

    /// A final decision as the exchange's result.
    func answer(_ decision: UpstreamDecision, _ keepAlive: inout Bool) -> Result {
        switch decision {
        case .respond(let status, let retryAfter): return .failed(status, retryAfter.map { [("Retry-After", $0)] } ?? [])
        case .close, .reconnect, .anotherSlot:
            keepAlive = false
            return .done
        }
    }

    /// One attempt on `kept`, or on a new connection to the lease's slot. Returns the
    /// connection for release().
    func send(_ kept: FileDescriptor?, _ lease: AppDispatcher.Lease, _ conn: ClientConnection, _ parser: inout HTTPRequestParser,
              spool: BufferedBody?, params: [(name: String, value: String)], keepAlive: inout Bool, outcome: inout Outcome) -> (Attempt, FileDescriptor?) {
        let backend: FileDescriptor
        if let k = kept {
            backend = k
        } else {
            do {
                backend = try BackendConnector.connect(lease.address, timeout: timeouts.backendConnect)
            } catch {
                return (.failed(.unreachable(error), headSent: false), nil)
            }
        }
        return (exchange(backend, id: lease.requestID, conn, &parser, spool: spool, params: params, keepAlive: &keepAlive, outcome: &outcome), backend)
    }

    enum Attempt {
        /// The attempt failed; UpstreamPolicy decides what follows.
        case failed(UpstreamFailure, headSent: Bool)
        case finished(Result, reusable: Bool)
    }

    /// Sends the request on `backend` and relays the response.
    func exchange(_ backend: FileDescriptor, id: UInt16, _ conn: ClientConnection, _ parser: inout HTTPRequestParser, spool: BufferedBody?,
                  params: [(name: String, value: String)], keepAlive: inout Bool, outcome: inout Outcome) -> Attempt {
        do {
            var opening = FastCGIRequestWriter.begin(requestID: id, params: params, keepConnection: app.keepConnection)
            let streamsBody = target == head.target && (spool != nil || head.framing != .none && head.framing != .contentLength(0))
            if !streamsBody {
                // One write for the whole request: an app that answers before reading the
                // empty STDIN record would otherwise find it on the kept connection later
                // and close it (libfcgi does).
                opening += FastCGIRequestWriter.endOfStdin(requestID: id)
                try send(backend, opening)
                return relayResponse(backend, id: id, conn, keepAlive: &keepAlive, outcome: &outcome)
            }
            try send(backend, opening)
            if target == head.target {
                if let spool {
                    try sendSpooled(spool, to: backend, id: id)
                } else if case .contentLength(let n) = head.framing, n > 0 {
                    try ClientBody.read(conn, &parser, timeout: timeouts.body, total: timeouts.bodyTotal) { piece in
                        try send(backend, FastCGIRequestWriter.stdin(requestID: id, piece))
                    }
                }
            }
            try send(backend, FastCGIRequestWriter.endOfStdin(requestID: id))
        } catch let e as BodyError {
            keepAlive = false
            return .finished(.failed(e.status, []), reusable: false)
        } catch {
            // The app went away while we were writing: nothing was sent to the client yet.
            return .failed(.closedBeforeAnswer, headSent: false)
        }
        return relayResponse(backend, id: id, conn, keepAlive: &keepAlive, outcome: &outcome)
    }

    /// Reads the app's output and streams it to the client.
    func relayResponse(_ backend: FileDescriptor, id: UInt16, _ conn: ClientConnection, keepAlive: inout Bool, outcome: inout Outcome) -> Attempt {
        var relay = ResponseRelay(request: head, requestID: id, maxHeadSize: ctx.config.limits.maxResponseHead, keepAlive: keepAlive)
        var buffer = [UInt8].readBuffer(65536)
        // What one read from the app produced (head, body, last chunk) goes to the
        // client in one write: three writes per small response cost the client side
        // three wake-ups, and showed as a third of the worker's time.
        var pending: [UInt8] = []
        pending.reserveCapacity(4096)
        defer { outcome.status = relay.status }

        func failed(_ failure: UpstreamFailure) -> Attempt {
            if case .broken = failure { keepAlive = false }
            return .failed(failure, headSent: relay.headSent)
        }

        while true {
            // Wait for output, a second at a time (the worker's heartbeat stays fresh).
            let deadline = Host.monotonicSeconds() + timeouts.backendRead
            var ready = false
            while !ready {
                let left = deadline - Host.monotonicSeconds()
                if left <= 0 { return failed(.broken(.timeout)) }
                ctx.onWait()
                ready = (try? backend.waitReadable(timeoutMilliseconds: Int32(min(left, 1) * 1000) + 1)) ?? true
            }
            // A read error is a reset: the same as a close. nil: a wake-up with nothing to read.
            let got: Int?
            do { got = try backend.read(into: &buffer, from: 0) } catch { got = 0 }
            guard let n = got else { continue }
            if n == 0 { return failed(relay.failureOnClose) }
            var notes: [ExchangeNote] = []
            defer { ctx.log(notes, meta) }
            do { try relay.receive(buffer[0..<n], into: &pending, mayKeepAlive: ctx.mayKeepAlive, date: ctx.httpDate(), notes: &notes) } catch {
                return failed(relay.failure(for: error))
            }
            keepAlive = relay.keepAlive
            if relay.ended {
                if let location = relay.redirect { return .finished(.localRedirect(location), reusable: relay.reusable) }
                guard pending.isEmpty || write(pending, conn, &outcome) else { return .finished(.done, reusable: false) }
                return .finished(.done, reusable: relay.reusable)
            }
            if !pending.isEmpty {
                guard write(pending, conn, &outcome) else { return .finished(.done, reusable: false) }
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    func write(_ bytes: [UInt8], _ conn: ClientConnection, _ outcome: inout Outcome) -> Bool {
        do {
            try conn.write(bytes, timeout: timeouts.send)
            outcome.bytesSent += bytes.count
            return true
        } catch {
            ctx.logger.info("client went away: \(error)", metadata: meta)
            outcome.clientGone = true
            return false
        }
    }

    // MARK: - Request body

    func send(_ backend: FileDescriptor, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            if let n = try backend.write(bytes, from: offset), n > 0 {
                offset += n
                continue
            }
            // The socket is full (the app reads slowly): wait for room.
            guard try backend.waitWritable(timeoutMilliseconds: Int32(timeouts.backendRead * 1000)) else { throw UpstreamError.timeout }
            ctx.onWait()
        }
    }

    /// Reads a whole chunked body into an unlinked temporary file; returns it and its length.
    func spoolChunkedBody(_ conn: ClientConnection, _ parser: inout HTTPRequestParser) throws -> BufferedBody {
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

    func sendSpooled(_ body: BufferedBody, to backend: FileDescriptor, id: UInt16) throws {
        try body.forEachPiece { piece in try send(backend, FastCGIRequestWriter.stdin(requestID: id, piece)) }
    }

    // MARK: - Meta-variables

    /// For a local redirect the app sees a GET of the new target, without a body.
    func redirectedHead() -> HTTPRequestHead { CGIRunSetup.requestHead(head, target: target) }

    func cgiContext(remote: (address: String, port: Int), local: (address: String, port: Int), contentLength: UInt64?) -> CGIRequestContext {
        let host = head.host.map(CGIEnvironment.hostWithoutPort) ?? ""
        let root = app.root
        let client = ctx.clientPeer(remote, head: head)
        let filename = match.scriptFilename ?? root.map { CGIEnvironment.joinPath($0, match.scriptName) }
        return CGIRequestContext(
            scriptName: match.scriptName, pathInfo: match.pathInfo, documentRoot: root, scriptFilename: filename,
            contentLength: contentLength, remoteAddress: client.address.isEmpty ? "127.0.0.1" : client.address,
            remotePort: client.port, serverName: ctx.config.server.serverName ?? (host.isEmpty ? "localhost" : host),
            serverPort: local.port, serverAddress: local.address.isEmpty ? nil : local.address,
            https: client.https, serverSoftware: WorkerContext.software,
            extra: match.route.env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } + app.env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }
}

