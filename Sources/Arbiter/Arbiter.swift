import GatewayConfig
import GatewayLogging
import GatewaySystem
import Logging

/// The master process, after gunicorn's arbiter: binds the listeners, keeps `workers`
/// worker processes running, kills silent ones, and acts on signals. It never touches
/// a client socket.
///
/// Signals: TERM graceful stop; INT and QUIT fast stop; HUP reload (new workers first,
/// then the old ones drain); TTIN/TTOU one worker more/less; USR1 reopen log files.
public final class Arbiter {
    struct Worker {
        let pid: Int32
        let id: Int
        let generation: Int
        let heartbeat: FileDescriptor
        let started: Double
        var abortedAt: Double? = nil
        var termSentAt: Double? = nil
    }

    /// Exit code of a worker that could not boot: the master stops instead of respawning.
    public static let workerBootError: Int32 = 3

    var config: Configuration
    let reload: () throws -> Configuration
    let executable: String
    var logger: Logger
    let errorSink: LogSink
    let listeners = Listeners()
    var workers: [Int32: Worker] = [:]
    var target: Int
    var generation = 0
    var nextWorkerID = 1
    var configFile: FileDescriptor? = nil
    var fastDeaths = 0
    var stopping: (graceful: Bool, since: Double)? = nil
    var signalPipe: FileDescriptor!

    public init(config: Configuration, executable: String, errorSink: LogSink, reload: @escaping () throws -> Configuration) {
        self.config = config
        self.reload = reload
        self.executable = executable
        self.errorSink = errorSink
        self.logger = GatewayLogging.logger(role: "master", sink: errorSink, level: config.log.level)
        self.target = config.server.workers
    }

    /// Runs until stopped; returns the process exit code.
    public func run() -> Int32 {
        do {
            signalPipe = try Signals.pipe(for: [Signals.term, Signals.int, Signals.quit, Signals.hup, Signals.ttin,
                                                Signals.ttou, Signals.usr1, Signals.chld])
            Signals.ignore(13)  // SIGPIPE
            _ = try listeners.update(to: config.server.bind, backlog: config.server.backlog, unixMode: config.server.unixSocketMode)
            try writeConfigFile()
        } catch {
            logger.critical("cannot start: \(error)")
            listeners.closeAll()
            return 1
        }
        writePidfile()
        logger.info("gatewayd \(config.server.workerClass.rawValue) master listening on \(config.server.bind.map(\.description).joined(separator: ", ")), \(target) workers")
        defer { cleanUp() }
        while true {
            if let code = step() { return code }
        }
    }

    /// One turn of the loop: signals, dead workers, silent workers, the worker count.
    func step() -> Int32? {
        _ = try? Poll.wait([(signalPipe, Poll.readable)], timeoutMilliseconds: 250)
        for sig in Signals.drain(signalPipe) { handle(sig) }
        if let code = reapWorkers() { return code }
        if let stop = stopping {
            if workers.isEmpty {
                logger.info("all workers have exited; bye")
                return 0
            }
            let limit = stop.graceful ? config.server.gracefulTimeout : 1
            if Host.monotonicSeconds() - stop.since > limit {
                logger.warning("\(workers.count) workers still running after \(limit) s; killing them")
                for pid in workers.keys { Processes.signal(pid, Signals.kill) }
            }
            return nil
        }
        killSilentWorkers()
        drainOldGenerations()
        spawnMissingWorkers()
        return nil
    }

    // MARK: - Signals

    func handle(_ sig: Int32) {
        switch sig {
        case Signals.chld:
            break  // reaped every turn
        case Signals.term:
            logger.info("TERM: graceful stop (up to \(config.server.gracefulTimeout) s for requests in flight)")
            stop(graceful: true)
        case Signals.int, Signals.quit:
            logger.info("\(Signals.name(sig)): fast stop")
            stop(graceful: false)
        case Signals.hup:
            reloadConfiguration()
        case Signals.ttin:
            target += 1
            logger.info("TTIN: \(target) workers")
        case Signals.ttou:
            guard target > 1 else { logger.info("TTOU: already at 1 worker"); return }
            target -= 1
            logger.info("TTOU: \(target) workers")
            if let oldest = currentWorkers.min(by: { $0.id < $1.id }) { terminate(oldest.pid) }
        case Signals.usr1:
            logger.info("USR1: reopening log files")
            errorSink.reopen()
            for pid in workers.keys { Processes.signal(pid, Signals.usr1) }
        default:
            break
        }
    }

    func stop(graceful: Bool) {
        guard stopping == nil || (stopping!.graceful && !graceful) else { return }
        stopping = (graceful, Host.monotonicSeconds())
        // Stop accepting at once: closing our copies does not close the workers' copies,
        // but the workers stop accepting on TERM too.
        for pid in workers.keys { Processes.signal(pid, graceful ? Signals.term : Signals.quit) }
    }

    // MARK: - Workers

    var currentWorkers: [Worker] {
        workers.values.filter { $0.generation == generation && $0.termSentAt == nil }
    }

    func spawnMissingWorkers() {
        var missing = target - currentWorkers.count
        while missing > 0 {
            spawnWorker()
            missing -= 1
        }
    }

    func spawnWorker() {
        do {
            let heartbeatRaw = try Host.anonymousFile()
            let heartbeat = try heartbeatRaw.duplicate(atLeast: 64)
            try? heartbeatRaw.close()
            heartbeat.touch()
            guard let configFD = configFile else { return }
            var fds: [(source: FileDescriptor, target: Int32)] = [(configFD, 3), (heartbeat, 4)]
            var listenFDs: [String] = []
            for (i, l) in listeners.byAddress.enumerated() {
                fds.append((l.fd, Int32(5 + i)))
                listenFDs.append(String(5 + i))
            }
            let id = nextWorkerID
            nextWorkerID += 1
            let args = [executable, "worker", "--config-fd", "3", "--heartbeat-fd", "4",
                        "--listen-fds", listenFDs.joined(separator: ","), "--worker-id", String(id),
                        "--master-pid", String(Processes.currentPID)]
            let pid = try Processes.spawn(path: executable, arguments: args, environment: Processes.environment(), fds: fds)
            workers[pid] = Worker(pid: pid, id: id, generation: generation, heartbeat: heartbeat, started: Host.monotonicSeconds())
            logger.info("booted worker \(id) (pid \(pid))")
        } catch {
            logger.error("cannot start a worker: \(error)")
        }
    }

    /// Reaps dead workers. A worker that failed to boot stops the master (exit code 3),
    /// and so do five workers in a row that die within 2 s of starting: better a clear
    /// stop than a spin.
    func reapWorkers() -> Int32? {
        for (pid, status) in Processes.reap() {
            guard let w = workers.removeValue(forKey: pid) else { continue }
            try? w.heartbeat.close()
            let lifetime = Host.monotonicSeconds() - w.started
            if stopping != nil || w.termSentAt != nil {
                logger.info("worker \(w.id) (pid \(pid)) exited: \(status)")
                continue
            }
            if status == .exited(Self.workerBootError) {
                logger.critical("worker \(w.id) (pid \(pid)) failed to boot (see its error above); halting the master")
                stop(graceful: false)
                return Self.workerBootError
            }
            logger.warning("worker \(w.id) (pid \(pid)) exited: \(status); starting another")
            fastDeaths = lifetime < 2 ? fastDeaths + 1 : 0
            if fastDeaths >= 5 {
                logger.critical("5 workers in a row died within 2 s of starting; halting the master instead of spinning")
                stop(graceful: false)
                return Self.workerBootError
            }
        }
        return nil
    }

    /// Workers whose heartbeat is older than `timeout` get SIGABRT, then SIGKILL 2 s later.
    func killSilentWorkers() {
        let now = Host.monotonicSeconds()
        for (pid, w) in workers {
            if let t = w.abortedAt {
                if now - t > 2 { Processes.signal(pid, Signals.kill) }
                continue
            }
            let silent = w.heartbeat.secondsSinceModified()
            if silent > config.server.timeout {
                logger.error("worker \(w.id) (pid \(pid)) silent for \(Int(silent)) s (timeout \(Int(config.server.timeout)) s); aborting it")
                Processes.signal(pid, Signals.abrt)
                workers[pid]?.abortedAt = now
            }
        }
    }

    func terminate(_ pid: Int32) {
        Processes.signal(pid, Signals.term)
        workers[pid]?.termSentAt = Host.monotonicSeconds()
    }

    /// Old workers (after a reload or TTOU) get graceful_timeout to finish, then SIGKILL.
    func drainOldGenerations() {
        let now = Host.monotonicSeconds()
        for (pid, w) in workers {
            if let t = w.termSentAt, now - t > config.server.gracefulTimeout {
                logger.warning("worker \(w.id) (pid \(pid)) still draining after \(config.server.gracefulTimeout) s; killing it")
                Processes.signal(pid, Signals.kill)
                workers[pid]?.termSentAt = now
            }
        }
    }

    // MARK: - Reload

    /// HUP: read the configuration again. If it is invalid, keep serving with the old one
    /// and log why; else open new listeners, start the new workers first, then drain the old.
    func reloadConfiguration() {
        let new: Configuration
        do {
            new = try reload()
        } catch {
            logger.error("HUP: the new configuration is invalid; still serving with the old one:\n\(error)")
            return
        }
        let oldWorkers = workers.values.filter { $0.termSentAt == nil }.map(\.pid)
        let previous = config
        config = new
        do {
            let change = try listeners.update(to: new.server.bind, backlog: new.server.backlog, unixMode: new.server.unixSocketMode)
            if !change.opened.isEmpty { logger.info("HUP: listening on \(change.opened.map(\.description).joined(separator: ", "))") }
            if !change.closed.isEmpty { logger.info("HUP: no longer listening on \(change.closed.map(\.description).joined(separator: ", "))") }
            try writeConfigFile()
        } catch {
            logger.error("HUP: cannot apply the new configuration (\(error)); still serving with the old one")
            config = previous
            _ = try? listeners.update(to: previous.server.bind, backlog: previous.server.backlog, unixMode: previous.server.unixSocketMode)
            try? writeConfigFile()
            return
        }
        logger = GatewayLogging.logger(role: "master", sink: errorSink, level: new.log.level)
        target = new.server.workers
        generation += 1
        logger.info("HUP: configuration reloaded; starting \(target) new workers, then draining \(oldWorkers.count) old ones")
        spawnMissingWorkers()
        for pid in oldWorkers { terminate(pid) }
    }

    /// The effective configuration workers read, as TOML in an unlinked file (fd 3 in a
    /// worker): every worker of a generation sees exactly what the master validated.
    func writeConfigFile() throws(SystemError) {
        let raw = try Host.anonymousFile(contents: Array(config.renderTOML().utf8))
        let fd = try raw.duplicate(atLeast: 64)
        try? raw.close()
        try? configFile?.close()
        configFile = fd
    }

    // MARK: - Pidfile and exit

    func writePidfile() {
        guard let path = config.server.pidfile else { return }
        do { try Host.writeFile(path, "\(Processes.currentPID)\n") } catch { logger.error("cannot write pidfile: \(error)") }
    }

    func cleanUp() {
        listeners.closeAll()
        if let path = config.server.pidfile { Host.removeFile(path) }
    }
}
