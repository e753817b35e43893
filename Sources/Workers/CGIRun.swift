import CGIProtocol
import GatewayConfig
import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// A request body read whole before the program starts: in memory, or in an unlinked
/// temporary file past `memoryLimit` (lighttpd's and nginx's default request buffering:
/// a slow upload never holds a CGI process, and the program gets CONTENT_LENGTH even for
/// a chunked request).
struct BufferedBody {
    static let memoryLimit = ExchangeLimits.bodyInMemory
    var memory: [UInt8] = []
    var spool: FileDescriptor? = nil
    var length: UInt64 = 0

    mutating func append(_ piece: ArraySlice<UInt8>) throws(SystemError) {
        length += UInt64(piece.count)
        if let spool {
            try spool.writeAll(Array(piece))
        } else if memory.count + piece.count > Self.memoryLimit {
            let file = try Host.anonymousFile()
            spool = file
            try file.writeAll(memory)
            try file.writeAll(Array(piece))
            memory = []
        } else {
            memory += piece
        }
    }

    func close() { try? spool?.close() }

    /// The FastCGI engine's next STDIN piece, read from the temporary file at its offset
    /// (a local file: a short blocking read, in every class).
    func supply(_ x: inout AppExchange, buffer: inout [UInt8]) {
        let n = spool.flatMap { try? $0.pread(into: &buffer, at: Int(x.bodyOffset)) } ?? 0
        if n > 0 { x.bodyPiece(buffer[0..<n]) } else { x.bodyEnd() }
    }

    /// The body in pieces of at most 64 KiB, from memory or the temporary file.
    func forEachPiece(_ sink: (ArraySlice<UInt8>) throws -> Void) throws {
        guard let file = spool else {
            if !memory.isEmpty { try sink(memory[...]) }
            return
        }
        var offset = 0
        var chunk = [UInt8].readBuffer(65536)
        while true {
            let n = try file.pread(into: &chunk, at: offset)
            if n == 0 { return }
            try sink(chunk[0..<n])
            offset += n
        }
    }
}

/// One running CGI program and its three pipes, driven one non-blocking step at a time
/// by a worker's loop (poll for sync and thread, epoll for epoll). The program runs in
/// its own process group so that a timeout or a client that leaves ends whatever it
/// started; its pidfd tells its exit apart from the end of its stdout, which a
/// background child may hold open.
final class CGIRun {
    let script: CGIScript
    let child: ChildProcess
    private(set) var stdin: FileDescriptor?
    private(set) var stdout: FileDescriptor?
    private(set) var stderr: FileDescriptor?
    private(set) var exitStatus: Processes.ExitStatus? = nil
    let started: Double
    /// When SIGTERM went to the group (run timeout, or the client left).
    private(set) var terminatedAt: Double? = nil
    private(set) var killed = false
    private let body: BufferedBody
    private var bodySent: UInt64 = 0
    private var piece: [UInt8] = []
    private var pieceStart = 0
    private var stderrLines: StderrLines

    private init(script: CGIScript, child: ChildProcess, stdin: FileDescriptor?, stdout: FileDescriptor,
                 stderr: FileDescriptor, body: BufferedBody) {
        self.script = script
        self.child = child
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.body = body
        stderrLines = StderrLines(label: script.scriptName)
        started = Host.monotonicSeconds()
    }

    /// Spawns the program. The caller keeps owning `body` (its temporary file).
    static func start(_ script: CGIScript, environment: [String], body: BufferedBody) throws(SystemError) -> CGIRun {
        var made: [FileDescriptor] = []
        do throws(SystemError) {
            for _ in 0..<3 {
                let (r, w) = try Pipe.make()
                made += [r, w]
            }
        } catch {
            for fd in made { try? fd.close() }
            throw error
        }
        let (inRead, inWrite, outRead, outWrite, errRead, errWrite) = (made[0], made[1], made[2], made[3], made[4], made[5])
        defer { for fd in [inRead, outWrite, errWrite] { try? fd.close() } }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(path: script.program, arguments: script.arguments, environment: environment,
                                           directory: script.directory, stdin: inRead, stdout: outWrite, stderr: errWrite)
        } catch {
            for fd in [inWrite, outRead, errRead] { try? fd.close() }
            throw error
        }
        for fd in [inWrite, outRead, errRead] { try? fd.setNonBlocking(true) }
        var stdin: FileDescriptor? = inWrite
        if body.length == 0 {
            try? inWrite.close()  // EOF at once
            stdin = nil
        }
        return CGIRun(script: script, child: child, stdin: stdin, stdout: outRead, stderr: errRead, body: body)
    }

    /// The meta-variables as the program's environment. A value from the client that
    /// starts with "()" is never passed as it is: old bash versions run such a value as a
    /// function definition (Shellshock, CVE-2014-6271), and the client can put one in any
    /// header, the Content-Type, the query or the Host. Such variables are dropped, except
    /// QUERY_STRING, whose "(" is percent-encoded (the same query to any URL decoder).
    /// Only the route's own `env` is trusted as written.
    static func environment(_ vars: [(name: String, value: String)], ctx: WorkerContext, script: CGIScript) -> [String] {
        var out: [String] = []
        out.reserveCapacity(vars.count + 1)
        var hasPath = false
        for (name, value) in vars {
            if value.hasPrefix("()") && script.route.env[name] == nil {
                if name == "QUERY_STRING" {
                    out.append("QUERY_STRING=%28" + value.dropFirst())
                    continue
                }
                ctx.logger.warning("dropped \(name) for \(script.scriptName): its value looks like a bash function definition")
                continue
            }
            if name == "PATH" { hasPath = true }
            out.append(name + "=" + value)
        }
        // A clean environment, but scripts expect to find sh, perl and friends.
        if !hasPath { out.append("PATH=/usr/local/bin:/usr/bin:/bin") }
        return out
    }

    // MARK: - Steps

    /// Writes body bytes while stdin takes them; closes stdin at the end of the body, or
    /// when the program has stopped reading (EPIPE). False on a read error of the spool.
    func feedStdin() {
        guard let fd = stdin else { return }
        while true {
            if pieceStart == piece.count {
                if bodySent >= body.length { return closeStdin() }
                if let spool = body.spool {
                    piece = [UInt8].readBuffer(65536)
                    guard let n = try? spool.pread(into: &piece, at: Int(bodySent)), n > 0 else { return closeStdin() }
                    piece.removeSubrange(n...)
                } else {
                    piece = body.memory
                }
                pieceStart = 0
                bodySent += UInt64(piece.count)
            }
            let n: Int?
            do { n = try fd.write(piece, from: pieceStart) } catch { return closeStdin() }  // EPIPE: it stopped reading
            guard let n, n > 0 else { return }  // the pipe is full
            pieceStart += n
        }
    }

    func closeStdin() {
        try? stdin?.close()
        stdin = nil
        piece = []
        pieceStart = 0
    }

    enum Read { case bytes(Int), wouldBlock, end }

    /// One read of stdout into `buffer`; at the end, stdout is closed.
    func readStdout(into buffer: inout [UInt8]) -> Read {
        guard let fd = stdout else { return .end }
        let n: Int?
        do { n = try fd.read(into: &buffer, from: 0) } catch { n = 0 }
        guard let n else { return .wouldBlock }
        if n == 0 {
            try? fd.close()
            stdout = nil
            return .end
        }
        return .bytes(n)
    }

    /// One read of stdout, relayed through `output` into `out` (the client's output).
    /// False when stdout would block while the program runs: wait for it. Once the program
    /// has exited, stdout that would block is held by something it started: the response
    /// ends there, and that leftover is ended with it.
    func relayStdout(_ output: inout CGIOutput, into out: inout [UInt8], buffer: inout [UInt8], date: String, draining: Bool) -> Bool {
        switch readStdout(into: &buffer) {
        case .wouldBlock:
            guard exited else { return false }
            endLeftovers()
            output.exitedHoldingStdout(into: &out)
            finishStdout()
        case .end:
            output.stdoutEnded(into: &out)
        case .bytes(let n):
            output.stdout(buffer[0..<n], into: &out, date: date, draining: draining)
        }
        return true
    }

    /// Reads what stderr has and logs it line by line, under the program's name.
    func readStderr(_ ctx: WorkerContext, _ meta: @autoclosure () -> Logger.Metadata, buffer: inout [UInt8]) {
        guard let fd = stderr else { return }
        while true {
            let n: Int?
            do { n = try fd.read(into: &buffer, from: 0) } catch { n = 0 }
            guard let n else { return }
            if n == 0 {
                try? fd.close()
                stderr = nil
                var notes: [ExchangeNote] = []
                stderrLines.finish(notes: &notes)
                ctx.log(notes, meta())
                return
            }
            var notes: [ExchangeNote] = []
            stderrLines.append(buffer[0..<n], notes: &notes)
            ctx.log(notes, meta())
        }
    }

    /// Reaps the program if it has ended (its pidfd is readable).
    @discardableResult
    func reapIfExited() -> Bool {
        if exitStatus != nil { return true }
        guard let status = child.tryReap() else { return false }
        exitStatus = status
        try? child.exitWatch.close()
        return true
    }

    var exited: Bool { exitStatus != nil }

    /// The exit worth a log line: not a clean one, nor one already reaped elsewhere
    /// (`.exited(-1)`, status unknown).
    var abnormalExit: String? {
        guard let s = exitStatus, s != .exited(0), s != .exited(-1) else { return nil }
        return "\(s)"
    }

    /// SIGTERM to the group; SIGKILL follows from `escalate` after the grace time.
    func terminate(now: Double) {
        guard terminatedAt == nil, !exited else { return }
        terminatedAt = now
        child.signalGroup(Signals.term)
    }

    /// SIGKILL to the group once the grace time after SIGTERM has passed.
    func escalate(now: Double, grace: Double) {
        guard let t = terminatedAt, !killed, now >= t + grace else { return }
        killed = true
        child.signalGroup(Signals.kill)
    }

    /// Ends everything: closes the pipes, kills the group if the program still runs
    /// (or a leftover of it holds a pipe) and reaps it. The wait is short: SIGKILL.
    func finish() {
        closePipes()
        if !exited {
            child.signalGroup(Signals.kill)
            exitStatus = child.reap()
        }
    }

    /// Its stdout is over for us (ended, or held by a leftover that is being killed).
    func finishStdout() {
        try? stdout?.close()
        stdout = nil
    }

    /// The client is gone: the pipes are closed (a program still writing gets EPIPE);
    /// the pidfd stays, to reap it.
    func closePipes() {
        closeStdin()
        finishStdout()
        try? stderr?.close()
        stderr = nil
    }

    /// The program has exited but something it started still holds its stdout: the
    /// response is over, and that leftover of its process group is ended with it. (One
    /// that closed its stdout, the usual way to daemonise, is left alone.)
    func endLeftovers() {
        child.signalGroup(Signals.kill)
    }
}
