import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// One request served by a CGI program with blocking I/O: the sync worker inline, the
/// thread worker on a pool thread. The body is read first (`BufferedBody`), a place is
/// taken from the worker's `CGIGate`, then one poll loop feeds stdin, relays stdout to
/// the client, logs stderr, watches the program's exit (pidfd) and the client's hang-up,
/// and enforces cgi.timeout.
struct CGIExchange {
    let ctx: WorkerContext
    let record: RequestRecord
    let script: CGIScript

    var cgi: CGIConfig { ctx.config.cgi }
    var meta: Logger.Metadata { ["request_id": "\(record.id)", "cgi": "\(script.scriptName)"] }

    func run(_ conn: ClientConnection) -> ExchangeEnd {
        let r = record
        guard ctx.cgiGate.acquire(deadline: Host.monotonicSeconds() + cgi.queueTimeout, onWait: ctx.onWait) else {
            return ctx.cgiPlacesBusy(meta)
        }
        defer { ctx.cgiGate.release() }
        let body = r.redirected ? BufferedBody() : conn.body
        let request = CGIRunSetup.requestHead(r.head, target: r.target)
        let env = CGIRunSetup.environment(ctx: ctx, script: script, head: request, remote: conn.remote, local: conn.local,
                                          contentLength: r.bodyLengthKnown ? body.length : nil)
        let run: CGIRun
        do { run = try CGIRun.start(script, environment: env, body: body) } catch {
            ctx.log([CGINotes.cannotStart(script.program, error)], meta)
            return .failed(502, [])
        }
        let started = Host.monotonicSeconds()
        defer { r.upstreamTime = Host.monotonicSeconds() - started }
        var loop = Loop(exchange: self, run: run, conn: conn,
                        output: CGIOutput(relay: CGIResponseRelay(request: request, nph: script.nph, maxHeadSize: ctx.config.limits.maxResponseHead,
                                                                  keepAlive: r.keepAlive)))
        loop.drive(until: started + cgi.timeout)
        r.status = loop.output.status
        r.bytesSent += loop.bytesSent
        return loop.result()
    }

    /// The poll loop over one run; CGIOutput says what its output means.
    struct Loop {
        let exchange: CGIExchange
        let run: CGIRun
        let conn: ClientConnection
        var output: CGIOutput
        var buffer = [UInt8].readBuffer(65536)
        var pending: [UInt8] = []
        var bytesSent = 0

        var ctx: WorkerContext { exchange.ctx }

        mutating func drive(until deadline: Double) {
            let grace = ctx.config.cgi.killGrace
            defer {
                run.finish()
                ctx.log(output.takeNotes(), exchange.meta)
            }
            while true {
                ctx.log(output.takeNotes(), exchange.meta)
                let now = Host.monotonicSeconds()
                if !output.timedOut && now >= deadline {
                    output.timeout(after: ctx.config.cgi.timeout)
                    run.terminate(now: now)
                }
                run.escalate(now: now, grace: grace)
                if output.stdoutDone && run.exited { return }
                if run.exited && output.failure == nil {
                    pumpStdout()  // what the program wrote before it exited is in the pipe now
                    return
                }
                if output.failure != nil || output.clientGone {
                    run.terminate(now: now)
                    waitForExit(seconds: grace)
                    return
                }
                wait(until: min(deadline, now + 1))
            }
        }

        /// One poll over the pipes, the pidfd and the client's hang-up.
        mutating func wait(until: Double) {
            var watched: [(FileDescriptor, Int16)] = []
            if let fd = run.stdin { watched.append((fd, Poll.writable)) }
            if let fd = run.stdout { watched.append((fd, Poll.readable)) }
            if let fd = run.stderr { watched.append((fd, Poll.readable)) }
            if !run.exited { watched.append((run.child.exitWatch, Poll.readable)) }
            watched.append((conn.fd, Poll.peerClosed))
            ctx.onWait()
            let ms = Int32(max(0, (until - Host.monotonicSeconds()) * 1000).rounded(.up)) + 1
            guard let ready = try? Poll.wait(watched, timeoutMilliseconds: ms) else { return }
            for (i, (fd, _)) in watched.enumerated() where ready[i] != 0 {
                if fd == conn.fd {
                    output.leave()
                } else if fd == run.stdin {
                    run.feedStdin()
                } else if fd == run.stdout {
                    pumpStdout()
                } else if fd == run.stderr {
                    run.readStderr(ctx, exchange.meta, buffer: &buffer)
                } else {
                    run.reapIfExited()
                }
            }
        }

        /// Reads stdout until it would block, relaying what it says.
        mutating func pumpStdout() {
            let context = ctx  // (not self inside the call that modifies self.output)
            while output.relaying && run.relayStdout(&output, into: &pending, buffer: &buffer, date: context.httpDate(),
                                                     draining: !context.mayKeepAlive) {
                flush()
            }
        }

        mutating func flush() {
            guard !pending.isEmpty else { return }
            do {
                try conn.write(pending, timeout: ctx.config.timeouts.send)
                bytesSent += pending.count
            } catch {
                output.leave()
            }
            pending.removeAll(keepingCapacity: true)
        }

        /// After SIGTERM: a moment for the program to go before finish() kills it.
        func waitForExit(seconds: Double) {
            let until = Host.monotonicSeconds() + seconds
            while !run.exited {
                let left = until - Host.monotonicSeconds()
                guard left > 0 else { return }
                _ = try? run.child.exitWatch.waitReadable(timeoutMilliseconds: Int32(min(left, 1) * 1000) + 1)
                run.reapIfExited()
            }
        }

        mutating func result() -> ExchangeEnd {
            let decision = output.end(abnormalExit: run.abnormalExit, script: exchange.script.scriptName)
            ctx.log(output.takeNotes(), exchange.meta)
            return decision.exchangeEnd
        }
    }
}

enum CGIRunSetup {
    /// For a local redirect the program sees a GET of the new target, without a body.
    static func requestHead(_ head: HTTPRequestHead, target: String) -> HTTPRequestHead {
        guard target != head.target else { return head }
        var h = head
        h.method = head.method == "HEAD" ? "HEAD" : "GET"
        h.target = target
        h.framing = .none
        return h
    }

    static func environment(ctx: WorkerContext, script: CGIScript, head: HTTPRequestHead, remote: (address: String, port: Int),
                            local: (address: String, port: Int), contentLength: UInt64?) -> [String] {
        let host = head.host.map(CGIEnvironment.hostWithoutPort) ?? ""
        let client = ctx.clientPeer(remote, head: head)
        let context = CGIRequestContext(
            scriptName: script.scriptName, pathInfo: script.pathInfo, documentRoot: script.documentRoot,
            scriptFilename: script.scriptFilename, contentLength: contentLength,
            remoteAddress: client.address.isEmpty ? "127.0.0.1" : client.address, remotePort: client.port,
            serverName: ctx.config.server.serverName ?? (host.isEmpty ? "localhost" : host), serverPort: local.port,
            serverAddress: local.address.isEmpty ? nil : local.address, https: client.https, serverSoftware: WorkerContext.software,
            extra: script.route.env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return CGIRun.environment(CGIEnvironment.build(head: head, context: context), ctx: ctx, script: script)
    }
}
