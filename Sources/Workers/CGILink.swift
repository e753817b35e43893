import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// Where an exchange's response bytes go: the worker class's client connection.
protocol ClientSink: AnyObject {
    /// Sends response bytes to the client (what it cannot take now stays queued with the
    /// host); false when the client is gone.
    func sendToClient(_ bytes: [UInt8]) -> Bool
    /// Response bytes the host holds that the client has not taken yet.
    var clientBacklog: Int { get }
}

/// One CGI program run for a request (CGIRun, with CGIOutput deciding what its output
/// means), driven one event at a time for every worker class: the blocking workers
/// poll its pipes, pidfd and client on their thread; the epoll worker registers them
/// and calls `event` from its loop. Its stdout is read only while the client has less
/// than `ClientOutput.highWater` unsent, and relayed as it comes.
final class CGILink {
    let ctx: WorkerContext
    let record: RequestRecord
    let script: CGIScript
    let run: CGIRun
    var output: CGIOutput
    /// cgi.timeout from the start: SIGTERM then, SIGKILL after cgi.kill_grace.
    let deadline: Double
    unowned let sink: ClientSink
    /// Stdout has bytes (or its end) to read, as last seen.
    private(set) var stdoutReadable = false
    /// The client has gone (or the program failed) and the program is being ended; its
    /// output goes nowhere.
    private(set) var abandoned = false
    /// The host's registrations of its fds (epoll), to forget them at the end.
    var registered: [Int32] = []
    private var out: [UInt8] = []

    private init(ctx: WorkerContext, record: RequestRecord, script: CGIScript, run: CGIRun, relay: CGIResponseRelay, sink: ClientSink) {
        self.ctx = ctx
        self.record = record
        self.script = script
        self.run = run
        self.sink = sink
        output = CGIOutput(relay: relay)
        deadline = run.started + ctx.config.cgi.timeout
    }

    /// Starts the program for `r`, its body whole. nil: it could not start (logged; 502).
    static func start(ctx: WorkerContext, record r: RequestRecord, script: CGIScript, body held: BufferedBody,
                      remote: (address: String, port: Int), local: (address: String, port: Int), sink: ClientSink) -> CGILink? {
        let body = r.redirected ? BufferedBody() : held
        let request = requestHead(r.head, target: r.target)
        let env = environment(ctx: ctx, script: script, head: request, remote: remote, local: local,
                              contentLength: r.bodyLengthKnown ? body.length : nil, startMicros: ctx.epochMicros(r.started),
                              secure: (r as? WorkerRequest)?.secure ?? false, serverProtocol: r.http2 ? "HTTP/2.0" : nil)
        let run: CGIRun
        do { run = try CGIRun.start(script, environment: env, body: body) } catch {
            ctx.log([CGINotes.cannotStart(script.program, error)], ["request_id": "\(r.id)", "cgi": "\(script.scriptName)"])
            return nil
        }
        let relay = CGIResponseRelay(request: request, nph: script.nph, maxHeadSize: ctx.config.limits.maxResponseHead, keepAlive: r.keepAlive,
                                     gzip: r.gzip)
        return CGILink(ctx: ctx, record: r, script: script, run: run, relay: relay, sink: sink)
    }

    var meta: Logger.Metadata { ["request_id": "\(record.id)", "cgi": "\(script.scriptName)"] }

    /// Its open fds and what each waits for (writable: stdin; readable: the others).
    var watched: [(fd: FileDescriptor, writable: Bool)] {
        var w: [(FileDescriptor, Bool)] = []
        if let fd = run.stdin { w.append((fd, true)) }
        if let fd = run.stdout { w.append((fd, false)) }
        if let fd = run.stderr { w.append((fd, false)) }
        if !run.exited { w.append((run.child.exitWatch, false)) }
        return w
    }

    /// Over for the client: the program exited and its stdout ended, or it failed, or the
    /// client left.
    var finished: Bool { output.failure != nil || output.clientGone || (output.stdoutDone && run.exited) }

    /// An event on one of its fds (`fd`: the raw number).
    func event(_ fd: Int32, buffer: inout [UInt8]) {
        if fd == run.stdin?.rawValue {
            run.feedStdin()
        } else if fd == run.stdout?.rawValue {
            stdoutReadable = true
            relay(&buffer)
        } else if fd == run.stderr?.rawValue {
            run.readStderr(ctx, meta, buffer: &buffer)
        } else if fd == run.child.exitWatch.rawValue, !run.exited {
            run.reapIfExited()
            stdoutReadable = true  // read what it wrote before it went
            relay(&buffer)
        }
    }

    /// Relays stdout while the client keeps up (again when the client has taken its backlog).
    func relay(_ buffer: inout [UInt8]) {
        while stdoutReadable && output.relaying && !abandoned && sink.clientBacklog < ClientOutput.highWater {
            if !run.relayStdout(&output, into: &out, buffer: &buffer, date: ctx.httpDate(), draining: !ctx.mayKeepAlive) {
                stdoutReadable = false
            }
            if !out.isEmpty {
                if sink.sendToClient(out) { record.bytesSent += out.count } else { output.leave() }
                out.removeAll(keepingCapacity: true)
            }
            ctx.log(output.takeNotes(), meta)
        }
    }

    /// The client hung up, or stopped taking output.
    func clientLeft() {
        output.leave()
        ctx.log(output.takeNotes(), meta)
    }

    /// The clock: past cgi.timeout, SIGTERM (noted once); SIGKILL after the grace time.
    func tick(now: Double) {
        if !output.timedOut && now >= deadline {
            output.timeout(after: ctx.config.cgi.timeout)
            ctx.log(output.takeNotes(), meta)
            // The slow-request entry, as for an app past request_timeout: what the kernel
            // shows of the program before it is ended.
            let view = ProcessView.read(run.child.pid).map(\.summary) ?? "pid \(run.child.pid) (gone)"
            ctx.logger.warning("cgi.timeout (\(ctx.config.cgi.timeout) s) passed: \(record.head.method) \(record.target) ran \(AppLink.seconds(now - run.started)) s; \(view)", metadata: meta)
            run.terminate(now: now)
        }
        run.escalate(now: now, grace: ctx.config.cgi.killGrace)
    }

    /// SIGTERM, and the pipes closed (a program still writing gets EPIPE): SIGKILL
    /// follows from `tick` after the grace time; the pidfd stays, to reap it.
    func abandon(now: Double) {
        abandoned = true
        run.terminate(now: now)
        run.closePipes()
    }

    /// How the exchange ended, for the session (once `finished`, or abandoned).
    func end() -> ExchangeEnd {
        record.upstreamTime = Host.monotonicSeconds() - run.started
        record.status = output.status
        let decision = output.end(abnormalExit: run.abnormalExit, script: script.scriptName)
        ctx.log(output.takeNotes(), meta)
        return decision.exchangeEnd
    }

    // MARK: - Setup

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
                            local: (address: String, port: Int), contentLength: UInt64?, startMicros: Int64,
                            secure: Bool = false, serverProtocol: String? = nil) -> [String] {
        let host = head.host.map(CGIEnvironment.hostWithoutPort) ?? ""
        let client = ctx.clientPeer(remote, head: head, secure: secure)
        var context = CGIRequestContext(
            scriptName: script.scriptName, pathInfo: script.pathInfo, documentRoot: script.documentRoot,
            scriptFilename: script.scriptFilename, contentLength: contentLength,
            remoteAddress: client.address.isEmpty ? "127.0.0.1" : client.address, remotePort: client.port,
            serverName: ctx.config.server.serverName ?? (host.isEmpty ? "localhost" : host), serverPort: local.port,
            serverAddress: local.address.isEmpty ? nil : local.address, https: client.https, serverSoftware: WorkerContext.software,
            extra: [("HTTP_X_REQUEST_START", "t=\(startMicros)")] + script.route.env.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        context.serverProtocol = serverProtocol
        return CGIRun.environment(CGIEnvironment.build(head: head, context: context), ctx: ctx, script: script)
    }
}
