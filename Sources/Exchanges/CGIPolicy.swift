/// How a CGI run ended, as the driver saw it.
public struct CGIEnd: Sendable, Equatable {
    /// The program's exit, when it is worth a log line ("exit 3", "signal 9"); nil for a
    /// clean exit or one nobody could observe.
    public var abnormalExit: String?
    /// The client went away first.
    public var clientGone: Bool
    /// The run outlived cgi.timeout and was ended.
    public var timedOut: Bool
    /// Its stdout reached EOF.
    public var stdoutDone: Bool
    /// What went wrong with its output (bad head, pipe error), if anything.
    public var failure: String?

    public init(abnormalExit: String?, clientGone: Bool, timedOut: Bool, stdoutDone: Bool, failure: String?) {
        self.abnormalExit = abnormalExit
        self.clientGone = clientGone
        self.timedOut = timedOut
        self.stdoutDone = stdoutDone
        self.failure = failure
    }
}

/// What the driver does with the client once a CGI run is over.
public enum CGIDecision: Sendable, Equatable {
    /// The response is complete; the connection may go on when `keepAlive`.
    case done(keepAlive: Bool)
    /// Nothing went out yet: answer with this error and close.
    case respond(status: Int)
    /// The head is out but the response is broken: close after what was sent.
    case close
    /// The client left: log 499, close.
    case clientGone
    /// The program asked for a local redirect.
    case localRedirect(String)
    /// The program handed the response to gatewayd (X-Accel-Redirect, X-Sendfile).
    case offload(Offload)
}

/// The end of every CGI run, for both worker families (one table, as UpstreamPolicy is
/// for FastCGI): a run ended for its timeout before it finished is a 504 (or a close
/// after its head), a broken output a 502, a local redirect is followed.
public enum CGIPolicy {
    public static func finish(_ end: CGIEnd, relay: CGIResponseRelay, script: String) -> (CGIDecision, [ExchangeNote]) {
        var notes: [ExchangeNote] = []
        if let exit = end.abnormalExit { notes.append(ExchangeNote(.info, "CGI program ended with \(exit)")) }
        if end.clientGone { return (.clientGone, notes) }
        if end.timedOut && (end.failure != nil || !end.stdoutDone) {
            return (relay.headSent ? .close : .respond(status: 504), notes)  // the timeout was logged when it struck
        }
        if let failure = end.failure {
            notes.append(ExchangeNote(.error, "\(script): \(failure)"))
            return (relay.headSent ? .close : .respond(status: 502), notes)
        }
        if let location = relay.redirect { return (.localRedirect(location), notes) }
        if let o = relay.offload { return (.offload(o), notes) }
        return (.done(keepAlive: relay.keepAlive), notes)
    }
}

/// What the CGI runners of both families log, worded once.
public enum CGINotes {
    public static func cannotStart(_ program: String, _ error: some Error) -> ExchangeNote {
        ExchangeNote(.error, "cannot start CGI program \(program): \(error)")
    }

    public static func placesBusy(_ maxProcesses: Int, queueTimeout: Double) -> ExchangeNote {
        ExchangeNote(.warning, "all \(maxProcesses) CGI places of this worker stayed busy for cgi.queue_timeout (\(queueTimeout) s); answering 503")
    }

    public static func timedOut(_ timeout: Double) -> ExchangeNote {
        ExchangeNote(.error, "CGI program ran longer than cgi.timeout (\(timeout) s); ending it")
    }

    public static let leftoverHoldsStdout =
        ExchangeNote(.info, "CGI program exited but a process it started holds its stdout; ending that process group")

    public static let clientGone = ExchangeNote(.info, "client went away; ending the CGI program")

    public static func bodyLength(sent: UInt64, declared: UInt64) -> ExchangeNote {
        ExchangeNote(.error, "CGI program sent \(sent) body bytes but Content-Length \(declared)")
    }
}

/// The output side of one CGI run, for both drivers: the program's stdout relayed to the
/// client, the end of its body (once), what went wrong, and so how the run ended
/// (CGIPolicy's table). The driver reads the pipes, writes to the client and signals
/// the program; what that means is decided here.
public struct CGIOutput {
    public private(set) var relay: CGIResponseRelay
    /// The body has ended (stdout reached EOF, or was given up).
    public private(set) var stdoutDone = false
    public private(set) var timedOut = false
    public private(set) var failure: String? = nil
    public private(set) var clientGone = false
    var notes: [ExchangeNote] = []

    public init(relay: CGIResponseRelay) { self.relay = relay }

    /// Whether stdout is still worth reading and relaying.
    public var relaying: Bool { !stdoutDone && failure == nil && !clientGone }
    public var status: Int { relay.status }

    /// Bytes from the program's stdout; what the client should get is appended to `out`.
    public mutating func stdout(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8], date: @autoclosure () -> String, draining: Bool) {
        guard relaying else { return }
        do { try relay.receive(bytes, into: &out, date: date(), draining: draining) } catch { failure = error.description }
    }

    /// Stdout is at its end: the body's end (the last chunk) goes to `out`.
    public mutating func stdoutEnded(into out: inout [UInt8]) {
        guard !stdoutDone else { return }
        stdoutDone = true
        guard failure == nil else { return }
        do {
            if let short = try relay.finish(into: &out) {
                notes.append(CGINotes.bodyLength(sent: short.sent, declared: short.declared))
                relay.keepAlive = false
            }
        } catch {
            failure = error.description
        }
    }

    /// The program exited, yet its stdout stays open: a process it started holds it. The
    /// driver ends that process group; the response ends with what came.
    public mutating func exitedHoldingStdout(into out: inout [UInt8]) {
        notes.append(CGINotes.leftoverHoldsStdout)
        stdoutEnded(into: &out)
    }

    /// cgi.timeout passed: the driver sends SIGTERM.
    public mutating func timeout(after seconds: Double) {
        guard !timedOut else { return }
        timedOut = true
        notes.append(CGINotes.timedOut(seconds))
    }

    /// The client went away (or stopped taking output): the driver ends the program.
    public mutating func leave() {
        guard !clientGone else { return }
        clientGone = true
        notes.append(CGINotes.clientGone)
    }

    /// The driver could not go on with the run (a pipe it could not watch).
    public mutating func fail(_ why: String) {
        if failure == nil { failure = why }
    }

    /// How the run ended, once the program has exited (or was given up).
    public mutating func end(abnormalExit: String?, script: String) -> CGIDecision {
        let end = CGIEnd(abnormalExit: abnormalExit, clientGone: clientGone, timedOut: timedOut, stdoutDone: stdoutDone, failure: failure)
        let (decision, more) = CGIPolicy.finish(end, relay: relay, script: script)
        notes += more
        return decision
    }

    /// The log lines of what happened since the last call.
    public mutating func takeNotes() -> [ExchangeNote] {
        defer { notes = [] }
        return notes
    }
}
