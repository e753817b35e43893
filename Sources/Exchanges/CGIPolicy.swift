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
