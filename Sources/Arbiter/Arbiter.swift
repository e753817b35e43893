import GatewayConfig
import GatewayLogging
import GatewaySystem
import Logging
import AppPool

/// The master process, after gunicorn's arbiter: binds the listeners, keeps `workers`
/// worker processes running, kills silent ones, and acts on signals. It never touches
/// a client socket.
///
/// Signals: TERM graceful stop; INT and QUIT fast stop; HUP reload (new workers first,
/// then the old ones drain); TTIN/TTOU one worker more/less; USR1 reopen log files;
/// USR2 start a new master from the binary on disk (BinaryUpgrade.swift).
public final class Arbiter {
    struct Worker {
        let pid: Int32
        let id: Int
        let generation: Int
        let heartbeat: FileDescriptor
        let started: Double
        /// Its row in the slot table's worker list (status page).
        let record: Int
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
    /// What the master and workers share about the apps: slots, queues, counters.
    var table: SlotTable!
    var serverWatch: ServerWatch?
    /// When the TLS ticket key was last rotated (monotonic seconds).
    var ticketKeyBorn = Host.monotonicSeconds()
    /// Hosted app processes (command apps).
    var apps: AppSupervisor!
    /// Apps a HUP removed or laid out anew, still serving the workers started before it
    /// (AppGenerations.swift): stopped when the last of those workers is gone.
    var drains: [(apps: AppSupervisor, oldWorkers: Set<Int32>)] = []
    /// Workers write a byte here when the master should look at the apps now
    /// (a request waits for a process; a process reached max_requests).
    var nudgeRead: FileDescriptor!
    var nudgeWrite: FileDescriptor!
    /// The control socket (`gatewayd reload-app`), when there is one (ControlSocket.swift).
    var control: FileDescriptor? = nil
    /// A new master started by USR2 (binary upgrade), while it runs beside this one.
    var upgrade: (pid: Int32, since: Double)? = nil

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
                                                Signals.ttou, Signals.usr1, Signals.usr2, Signals.chld])
            Signals.ignore(13)  // SIGPIPE
            let passed = listeners.adoptSystemdSockets()
            if !passed.isEmpty { logger.info("socket activation: systemd passed \(passed.joined(separator: ", "))") }
            let inherited = listeners.adoptInherited()
            if !inherited.isEmpty { logger.info("binary upgrade: took over \(inherited.joined(separator: ", ")) from the old master") }
            _ = try listeners.update(to: config.server.bind, backlog: config.server.backlog, unixMode: config.server.unixSocketMode)
            for address in listeners.closeUnclaimedInherited() {
                logger.warning("binary upgrade: the old master listens on \(address), which is not in server.bind; not taking it over")
            }
            for address in listeners.closeUnclaimedSystemdSockets() {
                logger.error("socket activation: systemd passed a socket on \(address), which is not in server.bind; it is closed (list the same addresses in the .socket unit and in bind)")
            }
            try writeConfigFile()
            try startApps()
        } catch {
            logger.critical("cannot start: \(error)")
            listeners.closeAll()
            return 1
        }
        writePidfile()
        openControlSocket()
        logger.info("gatewayd \(config.server.workerClass.rawValue) master listening on \(config.server.bind.map(\.description).joined(separator: ", ")), \(target) workers")
        defer { cleanUp() }
        while true {
            if let code = step() { return code }
        }
    }

    /// The slot table, the nudge pipe, the apps' run directory, and the first app processes.
    func startApps() throws {
        table = try SlotTable.create(for: config)
        let (r, w) = try Pipe.make(nonBlocking: true)
        nudgeRead = r
        nudgeWrite = try w.duplicate(atLeast: 64)
        try? w.close()
        // The apps' sockets live in /tmp/gatewayd-apps-<master pid>-XXXXXX; a master
        // killed with SIGKILL leaves its directory behind, so clear those of dead masters.
        Host.removeStaleDirectories(prefix: "gatewayd-apps")
        let dir = try Host.makeTemporaryDirectory("/tmp/gatewayd-apps-\(Processes.currentPID)-XXXXXX")
        let hosted = config.apps.contains { if case .hosted = $0.kind { return true } else { return false } }
        // Workers that drop to `user` must reach the hosted apps' sockets in it.
        if hosted && Host.isRoot && (config.server.user != nil || config.server.group != nil) {
            try Host.changeOwner(dir, user: config.server.user, group: config.server.group)
        }
        apps = AppSupervisor(config: config, table: table, runDirectory: dir, executable: executable,
                             logger: GatewayLogging.logger(role: "master", sink: errorSink, level: config.log.level))
        apps.tick()
        watchServers()
    }

    /// (Re)starts the watch over connect apps' servers (probes, learned capacities, name
    /// lookups) for the configuration in force.
    func watchServers() {
        serverWatch?.stop()
        let log = logger
        serverWatch = ServerWatch(table: table, config: config) { warning, message in
            if warning { log.warning("\(message)") } else { log.notice("\(message)") }
        }
    }

    /// One turn of the loop: signals, dead workers and app processes, silent workers,
    /// the worker count, the app processes.
    func step() -> Int32? {
        var watched = [(signalPipe!, Poll.readable), (nudgeRead!, Poll.readable)] + apps.outputDescriptors.map { ($0, Poll.readable) }
            + drains.flatMap(\.apps.outputDescriptors).map { ($0, Poll.readable) }
        if let c = control { watched.append((c, Poll.readable)) }
        _ = try? Poll.wait(watched, timeoutMilliseconds: apps.hasHostedApps ? 100 : 250)
        serveControl()
        for sig in Signals.drain(signalPipe) { handle(sig) }
        _ = Signals.drain(nudgeRead)
        apps.readOutput()
        for d in drains { d.apps.readOutput() }
        if let code = reapChildren() { return code }
        finishDrains()
        rotateTicketKey()
        if let stop = stopping {
            if workers.isEmpty {
                logger.info("all workers have exited; stopping the apps; bye")
                for d in drains { d.apps.stopAll(grace: 3, removeDirectory: false) }
                drains = []
                apps.stopAll(grace: 3)
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
        apps.tick()
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
        case Signals.usr2:
            startNewBinary()
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
        // Stop accepting at once. The workers close their copies as they start to drain,
        // so once all are closed the kernel refuses new connections at once, rather than
        // queueing them in a backlog nobody accepts from (and resetting them at exit).
        listeners.closeAll(refusingNew: true)
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
            var fds: [(source: FileDescriptor, target: Int32)] = [(configFD, 3), (heartbeat, 4), (table.memory.fd, 5), (nudgeWrite, 6)]
            var listenFDs: [String] = []
            for (i, l) in listeners.byAddress.enumerated() {
                fds.append((l.fd, Int32(7 + i)))
                listenFDs.append(String(7 + i))
            }
            let id = nextWorkerID
            nextWorkerID += 1
            let used = Set(workers.values.map(\.record))
            let record = (0..<SlotTable.workerCapacity).first { !used.contains($0) } ?? -1
            let args = [executable, "worker", "--config-fd", "3", "--heartbeat-fd", "4", "--shared-fd", "5", "--nudge-fd", "6",
                        "--listen-fds", listenFDs.joined(separator: ","), "--worker-id", String(id),
                        "--worker-record", String(record), "--run-dir", apps.runDirectory,
                        "--app-areas", table.areaIndices.map(String.init).joined(separator: ","),
                        "--master-pid", String(Processes.currentPID)]
            let pid = try Processes.spawn(path: executable, arguments: args, environment: Processes.environment(), fds: fds)
            let now = Host.monotonicSeconds()
            if record >= 0 { table.workers[record] = WorkerRecord(pid: Int64(pid), id: Int64(id), requests: 0, connections: 0, startedAt: now) }
            workers[pid] = Worker(pid: pid, id: id, generation: generation, heartbeat: heartbeat, started: now, record: record)
            logger.info("booted worker \(id) (pid \(pid))")
        } catch {
            logger.error("cannot start a worker: \(error)")
        }
    }

    /// Reaps dead workers. A worker that failed to boot stops the master (exit code 3),
    /// and so do five workers in a row that die within 2 s of starting: better a clear
    /// stop than a spin.
    func reapChildren() -> Int32? {
        for (pid, status) in Processes.reap() {
            if apps.processExited(pid, status) { continue }
            if drains.contains(where: { $0.apps.processExited(pid, status) }) { continue }
            if pid == upgrade?.pid {
                newMasterExited(status)
                continue
            }
            guard let w = workers.removeValue(forKey: pid) else { continue }
            try? w.heartbeat.close()
            apps.workerExited(pid)
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
            if status == .exited(0) {
                // A worker retires by itself only at max_requests, after draining.
                logger.info("worker \(w.id) (pid \(pid)) retired; starting another")
                fastDeaths = 0
                continue
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

    // MARK: - Pidfile and exit

    func writePidfile() {
        guard let path = config.server.pidfile else { return }
        do { try Host.writeFile(path, "\(Processes.currentPID)\n") } catch { logger.error("cannot write pidfile: \(error)") }
    }

    func cleanUp() {
        serverWatch?.stop()
        for d in drains { d.apps.stopAll(grace: 1, removeDirectory: false) }
        apps?.stopAll(grace: 1)  // idempotent: nothing left after a clean stop
        listeners.closeAll()
        closeControlSocket()
        // After an upgrade the pidfile is the new master's; ours is the .oldbin.
        if let path = config.server.pidfile { Host.removeFile(upgrade == nil ? path : path + ".oldbin") }
    }
}
