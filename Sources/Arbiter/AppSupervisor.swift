import GatewayConfig
import GatewaySystem
import Logging
import AppPool

/// The master's process manager for hosted apps (`command`), after php-fpm's pm and
/// lighttpd's bin-path: one listening socket per slot, bound by the master and handed
/// to the slot's process as fd 0 (the FastCGI convention libfcgi, flup and php-cgi
/// follow). The socket outlives the process, so a replacement picks up connections
/// that queued while the old one exited.
///
/// Each `tick` applies the app's mode (static, dynamic, ondemand), starts processes
/// with back-off after failed starts, and stops processes that are retired (idle too
/// long, beyond max_spare, or past max_requests). The app processes belong to the
/// master: they survive worker restarts.
public final class AppSupervisor {
    struct Child {
        var app: Int
        let slot: Int
        let started: Double
        let output: FileDescriptor
        var termSentAt: Double? = nil
        /// Last lines it printed, for the message when it dies at start-up.
        var recentLines: [String] = []
        var partialLine: [UInt8] = []
    }

    struct AppState {
        var sockets: [FileDescriptor?]
        var everStarted: [Bool]
        var consecutiveFailures = 0
        var nextStartAt = 0.0
        var lastRetireAt = 0.0
    }

    var config: Configuration
    var table: SlotTable
    public let runDirectory: String
    let executable: String
    var logger: Logger
    var children: [Int32: Child] = [:]
    var states: [AppState]
    /// Rolling restarts in progress, by app index (AppRollout.swift).
    var rollouts: [Int: Rollout] = [:]
    let masterPID = Processes.currentPID
    /// Apps a HUP removed (or laid out anew), kept running for the old workers until they
    /// are gone: no process is started or replaced (AppGenerations.swift).
    var draining = false

    public init(config: Configuration, table: SlotTable, runDirectory: String, executable: String, logger: Logger) {
        self.config = config
        self.table = table
        self.runDirectory = runDirectory
        self.executable = executable
        self.logger = logger
        states = config.apps.map { AppState(sockets: Array(repeating: nil, count: $0.slotCount), everStarted: Array(repeating: false, count: $0.slotCount)) }
    }

    var hostedApps: [(index: Int, app: AppConfig, command: [String], pm: ProcessManager)] {
        config.apps.enumerated().compactMap { i, app in
            if case .hosted(let command, let pm) = app.kind { return (i, app, command, pm) }
            return nil
        }
    }

    public var hasHostedApps: Bool { !hostedApps.isEmpty }

    /// The read ends of the children's stdout/stderr, for the master's poll.
    public var outputDescriptors: [FileDescriptor] { children.values.map(\.output) }

    // MARK: - The policy, once per master turn

    public func tick() {
        guard !draining else { return }
        let now = Host.monotonicSeconds()
        for (i, app, command, pm) in hostedApps {
            advanceRollout(i)
            stopRetiring(i, now: now)
            let (empty, idleSlots, waiting) = snapshot(i, now: now)
            let running = app.slotCount - empty.count
            var wanted = 0
            switch pm.mode {
            case .static:
                wanted = empty.count
            case .dynamic:
                wanted = max(0, pm.minSpare - idleSlots.count) + waiting
                if idleSlots.count > pm.maxSpare && now - states[i].lastRetireAt >= 1 {
                    retire(i, slot: idleSlots.last!.slot, why: "more than max_spare (\(pm.maxSpare)) idle")
                }
            case .ondemand:
                wanted = waiting
                for idle in idleSlots where now - idle.since >= pm.idleTimeout {
                    retire(i, slot: idle.slot, why: "idle for \(Int(pm.idleTimeout)) s")
                }
            }
            wanted = min(wanted, app.slotCount - running, empty.count)
            guard wanted > 0, now >= states[i].nextStartAt else { continue }
            for slot in empty.prefix(wanted) { start(i, app: app, command: command, slot: slot) }
        }
    }

    /// Empty slots (no process), idle slots with their idle time, and waiting requests.
    func snapshot(_ app: Int, now: Double) -> (empty: [Int], idle: [(slot: Int, since: Double)], waiting: Int) {
        table.withLock(app) { a in a.processSnapshot() }
    }

    /// Marks an idle process retiring (no new requests); stopRetiring sends the TERM.
    func retire(_ app: Int, slot: Int, why: String) {
        let pid = table.withLock(app) { a in a.markRetiring(slot) }
        if pid != 0 {
            states[app].lastRetireAt = Host.monotonicSeconds()
            logger.info("app \(config.apps[app].name): retiring process \(pid) (slot \(slot)): \(why)")
        }
    }

    /// TERM to processes marked retiring; KILL to those that ignore it for the app's kill_grace.
    func stopRetiring(_ app: Int, now: Double) {
        // (pid, slot, its request limit when it reached it), read under the lock.
        let retiring = table.withLock(app) { a in a.retiringProcesses() }
        for (pid, slot, recycled) in retiring {
            guard var child = children[pid] else { continue }
            if let t = child.termSentAt {
                if now - t > config.apps[app].killGrace { Processes.signal(pid, Signals.kill) }
                continue
            }
            if let limit = recycled {
                logger.info("app \(config.apps[app].name): process \(pid) (slot \(slot)) served its \(limit) requests (max_requests); replacing it")
            }
            Processes.signal(pid, Signals.term)
            child.termSentAt = now
            children[pid] = child
        }
    }

    // MARK: - Starting processes

    func socket(_ app: Int, slot: Int) throws(SystemError) -> FileDescriptor {
        if let s = states[app].sockets[slot] { return s }
        let path = AppDispatcher.socketPath(runDirectory: runDirectory, app: config.apps[app].name, area: table.areaIndices[app], slot: slot)
        let raw = try Socket.listenUnix(path: path, backlog: 1024, mode: 0o600)
        let fd = try raw.duplicate(atLeast: 64)
        try? raw.close()
        if Host.isRoot && (config.server.user != nil || config.server.group != nil) {
            try Host.changeOwner(path, user: config.server.user, group: config.server.group)
        }
        states[app].sockets[slot] = fd
        return fd
    }

    /// The app's environment: clean, plus env_copy from ours, plus env.
    func environment(_ app: AppConfig) -> [String] {
        var env: [String: String] = [:]
        for name in app.envCopy { if let v = Host.environmentValue(name) { env[name] = v } }
        for (k, v) in app.env { env[k] = v }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    func start(_ app: Int, app config: AppConfig, command: [String], slot: Int) {
        let name = config.name
        guard let program = Host.findExecutable(command[0], searchPath: Host.environmentValue("PATH") ?? "/usr/bin:/bin") else {
            startFailed(app, "app \(name): cannot start `\(command.joined(separator: " "))`: \(command[0]) is not an executable file (or not on PATH)")
            return
        }
        do {
            let listener = try socket(app, slot: slot)
            let (outRead, outWrite) = try Pipe.make()
            try outRead.setNonBlocking(true)
            defer { try? outWrite.close() }
            // Through `gatewayd app-exec`: it sets the parent-death signal, the working
            // directory and the user, then execs the app (posix_spawn can do none of these).
            var args = [executable, "app-exec", "--master-pid", String(masterPID)]
            if let cwd = config.cwd { args += ["--cwd", cwd] }
            if Host.isRoot, let u = config.user { args += ["--user", u] }
            if Host.isRoot, let g = config.group { args += ["--group", g] }
            args += ["--", program] + command.dropFirst()
            let pid = try Processes.spawn(path: executable, arguments: args, environment: environment(config),
                                          fds: [(listener, 0), (outWrite, 1), (outWrite, 2)])
            let now = Host.monotonicSeconds()
            children[pid] = Child(app: app, slot: slot, started: now, output: outRead)
            let restart = states[app].everStarted[slot]
            states[app].everStarted[slot] = true
            let limit = requestLimit(config, slot: slot)
            table.withLock(app) { a in a.processStarted(slot, pid: Int64(pid), requestLimit: limit, restart: restart, now: now) }
            logger.debug("app \(name): started process \(pid) on slot \(slot)")
        } catch {
            startFailed(app, "app \(name): cannot start `\(command.joined(separator: " "))`: \(error)")
        }
    }

    /// max_requests for the process on `slot`: spread over [max, 1.5 x max) by slot, so
    /// processes that share the load evenly still reach their limits at different times.
    func requestLimit(_ app: AppConfig, slot: Int) -> Int {
        guard app.maxRequests > 0 else { return 0 }
        return app.maxRequests + (app.maxRequests * slot) / (2 * max(app.slotCount, 1))
    }

    /// Back-off after a start that failed: 0.5 s, 1 s, 2 s ... at most 30 s. Never a spin.
    func startFailed(_ app: Int, _ message: String) {
        states[app].consecutiveFailures += 1
        let delay = min(30, 0.5 * Double(1 << min(states[app].consecutiveFailures - 1, 6)))
        states[app].nextStartAt = Host.monotonicSeconds() + delay
        logger.error("\(message); retrying in \(delay) s")
    }

    // MARK: - Output and exits

    /// Reads what the children printed and logs it line by line with the app and pid.
    public func readOutput() {
        for pid in Array(children.keys) { drainOutput(pid) }
    }

    func drainOutput(_ pid: Int32) {
        guard var child = children[pid] else { return }
        var buffer = [UInt8](repeating: 0, count: 8192)
        while let n = try? child.output.read(into: &buffer, from: 0), n > 0 {
            child.partialLine += buffer[0..<n]
            while let nl = child.partialLine.firstIndex(of: 10) {
                logLine(child, pid, Array(child.partialLine[..<nl]), &child.recentLines)
                child.partialLine.removeSubrange(...nl)
            }
            if child.partialLine.count > 4096 {
                logLine(child, pid, child.partialLine, &child.recentLines)
                child.partialLine = []
            }
        }
        children[pid] = child
    }

    func logLine(_ child: Child, _ pid: Int32, _ bytes: [UInt8], _ recent: inout [String]) {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        guard !line.isEmpty else { return }
        logger.notice("app \(config.apps[child.app].name)[\(pid)]: \(line)")
        recent.append(line)
        if recent.count > 5 { recent.removeFirst() }
    }

    /// Handles the exit of a child; false if `pid` is not an app process.
    public func processExited(_ pid: Int32, _ status: Processes.ExitStatus) -> Bool {
        guard children[pid] != nil else { return false }
        drainOutput(pid)
        let child = children.removeValue(forKey: pid)!
        if !child.partialLine.isEmpty {
            var recent = child.recentLines
            logLine(child, pid, child.partialLine, &recent)
        }
        try? child.output.close()
        let now = Host.monotonicSeconds()
        let app = config.apps[child.app]
        let served = table.withLock(child.app) { a in a.processExited(child.slot, pid: Int64(pid)) }
        let lifetime = now - child.started
        if child.termSentAt != nil || draining {
            logger.debug("app \(app.name): process \(pid) (slot \(child.slot)) stopped: \(status)")
            return true
        }
        // A process that dies within a second without serving a request failed to start.
        if lifetime < 1 && served == 0 {
            var command: [String] = []
            if case .hosted(let c, _) = app.kind { command = c }
            let output = child.recentLines.isEmpty ? "it printed nothing" : "its last output: " + child.recentLines.joined(separator: " | ")
            startFailed(child.app, "app \(app.name): process \(pid) (`\(command.joined(separator: " "))`) exited at start-up (\(status) after \(Int(lifetime * 1000)) ms); \(output)")
        } else {
            states[child.app].consecutiveFailures = 0
            logger.warning("app \(app.name): process \(pid) (slot \(child.slot)) exited: \(status); starting another")
        }
        return true
    }

    /// A worker died: free its slots, kept connections and place in the queues, in every
    /// area (an old worker may hold slots of apps this configuration no longer has).
    public func workerExited(_ pid: Int32) {
        let all = table.allAreas()
        for i in all.apps.indices {
            all.withLock(i) { a in a.releaseAll(of: Int64(pid), now: Host.monotonicSeconds()) }
        }
        for w in 0..<SlotTable.workerCapacity where table.workers[w].pid == Int64(pid) { table.workers[w] = WorkerRecord() }
    }

    // MARK: - Stop

    /// Stops every app process (TERM, then KILL after `grace` seconds) and removes the sockets.
    public func stopAll(grace: Double, removeDirectory: Bool = true) {
        let now = Host.monotonicSeconds()
        for (pid, var child) in children {
            Processes.signal(pid, Signals.term)
            child.termSentAt = now  // an expected exit: not restarted, not a failure
            children[pid] = child
        }
        let deadline = Host.monotonicSeconds() + grace
        while !children.isEmpty && Host.monotonicSeconds() < deadline {
            for (pid, status) in Processes.reap() { _ = processExited(pid, status) }
            if !children.isEmpty { Host.sleep(seconds: 0.02) }
        }
        for pid in children.keys { Processes.signal(pid, Signals.kill) }
        for pid in Array(children.keys) {
            if let status = Processes.wait(pid) { _ = processExited(pid, status) }
        }
        closeSockets()
        if removeDirectory { Host.removeDirectory(runDirectory) }
    }

    /// Closes the apps' listening sockets and removes their files.
    func closeSockets() {
        for (i, state) in states.enumerated() {
            for (slot, fd) in state.sockets.enumerated() {
                guard let fd else { continue }
                try? fd.close()
                Host.removeFile(AppDispatcher.socketPath(runDirectory: runDirectory, app: config.apps[i].name, area: table.areaIndices[i], slot: slot))
            }
            states[i].sockets = Array(repeating: nil, count: state.sockets.count)
        }
    }
}
