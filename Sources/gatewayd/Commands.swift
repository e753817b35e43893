import ArgumentParser
import Arbiter
import GatewayConfig
import TLS
import GatewayLogging
import GatewaySystem
import Logging
import AppPool
import Workers
import Observability

/// `gatewayd [-c FILE]`: start the master, which starts the workers.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Start the master and its workers (the default).")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.load()
        let sink = LogSink(path: c.log.errorLog, defaultFD: 2)
        let options = self.options
        let arbiter = Arbiter(config: c, executable: Processes.executablePath(), errorSink: sink) {
            try options.loadOrThrow()
        }
        let code = arbiter.run()
        if code != 0 { throw ExitCode(code) }
    }
}

/// `gatewayd worker`: one worker process, started by the master (not for people).
/// Exit code 3 means "could not boot": the master then stops instead of respawning.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Internal: a worker process started by the master.",
                                                    shouldDisplay: false)

    @Option(help: "Fd holding the effective configuration (TOML).") var configFd: Int32
    @Option(help: "Fd of the heartbeat file.") var heartbeatFd: Int32
    @Option(help: "Fd of the shared slot table.") var sharedFd: Int32
    @Option(help: "Fd to nudge the master through.") var nudgeFd: Int32
    @Option(help: "This worker's row in the slot table's worker list.") var workerRecord: Int = -1
    @Option(help: "Directory of the hosted apps' sockets.") var runDir: String
    @Option(help: "Comma-separated slot table areas of the configuration's apps, in order (default: the first ones).") var appAreas: String = ""
    @Option(help: "Comma-separated listener fds.") var listenFds: String
    @Option(help: "Worker number, for logs.") var workerId: Int = 0
    @Option(help: "The master's pid (a worker exits if its parent is another process).") var masterPid: Int32

    func run() throws {
        let bootFailure = ExitCode(Arbiter.workerBootError)
        let text: String
        do {
            text = String(decoding: try FileDescriptor(configFd).readAll(), as: UTF8.self)
        } catch {
            printError("gatewayd worker: cannot read the configuration from fd \(configFd): \(error)")
            throw bootFailure
        }
        let config: Configuration
        do {
            config = try ConfigLoader.load(text: text, file: "(configuration from the master)", baseDirectory: "/", cpuCount: Host.cpuCount())
        } catch {
            printError("gatewayd worker: \(error)")
            throw bootFailure
        }
        let sink = LogSink(path: config.log.errorLog, defaultFD: 2)
        let logger = GatewayLogging.logger(role: "worker \(workerId)", sink: sink, level: config.log.level)
        let access = config.log.accessLog == "off" ? nil : AccessLog(sink: LogSink(path: config.log.accessLog, defaultFD: 1), format: config.log.accessLogFormat)
        let listeners = listenFds.split(separator: ",").compactMap { Int32($0) }.map(FileDescriptor.init)
        let process: WorkerProcess
        do {
            process = try WorkerProcess(listeners: listeners, heartbeat: FileDescriptor(heartbeatFd), masterPID: masterPid)
            try Processes.switchUser(config.server.user, group: config.server.group)
        } catch {
            logger.critical("cannot boot: \(error)")
            throw bootFailure
        }
        let dispatcher: AppDispatcher
        do {
            let areas = appAreas.isEmpty ? nil : appAreas.split(separator: ",").compactMap { Int($0) }
            let table = try SlotTable.attach(FileDescriptor(sharedFd), config: config, areas: areas)
            let nudge = FileDescriptor(nudgeFd)
            try nudge.setNonBlocking(true)
            dispatcher = AppDispatcher(table: table, config: config, runDirectory: runDir,
                                       loopWatchesParked: config.server.workerClass == .epoll) {
                _ = try? nudge.write([1], from: 0)  // a full pipe already says "look"
            }
        } catch {
            logger.critical("cannot boot: \(error)")
            throw bootFailure
        }
        let tls: [TLSContext?]
        do {
            tls = try TLSCheck.contexts(config, ticketKeys: dispatcher.table.ticketKeys)
        } catch {
            logger.critical("cannot boot: TLS: \(error)")
            throw bootFailure
        }
        let ctx = WorkerContext(config: config, logger: logger, errorSink: sink, accessLog: access,
                                dispatcher: dispatcher, workerRecord: workerRecord, tls: tls)
        ctx.onWait = { process.beatAndCheck(ctx) }
        ctx.requestLimit = process.requestLimit(config.server)
        // Each class's loop returns the worker's exit code; one that cannot start is a boot failure.
        let run: () -> Int32
        do {
            switch config.server.workerClass {
            case .sync: run = SyncWorker(context: ctx, process: process).run
            case .thread: run = try ThreadWorker(context: ctx, process: process).run
            case .epoll: run = try EpollWorker(context: ctx, process: process).run
            }
        } catch {
            logger.critical("cannot boot: \(error)")
            throw bootFailure
        }
        let code = run()
        if code != 0 { throw ExitCode(code) }
    }
}

/// `gatewayd app-exec`: how the master starts a hosted app process (not for people).
/// posix_spawn cannot set a parent-death signal, a working directory or a user, so
/// this small step does, then execs the app with its FastCGI socket on fd 0.
struct AppExec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "app-exec", abstract: "Internal: start a hosted app process.",
                                                    shouldDisplay: false)

    @Option(help: "The master's pid (exit if it is gone).") var masterPid: Int32
    @Option(help: "Working directory.") var cwd: String?
    @Option(help: "Run as this user (root only).") var user: String?
    @Option(help: "Run as this group (root only).") var group: String?
    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments.") var command: [String] = []

    func run() throws {
        var command = self.command
        if command.first == "--" { command.removeFirst() }
        guard let program = command.first else { throw ValidationError("no program given") }
        // The app dies with the master, even if the master is killed -9.
        Signals.onParentDeath(Signals.kill)
        if Processes.parentPID != masterPid { throw ExitCode(1) }
        do {
            if let cwd { try Processes.changeDirectory(cwd) }
            try Processes.switchUser(user, group: group)
        } catch {
            printError("gatewayd app-exec: \(error)")
            throw ExitCode(126)
        }
        let error = Processes.exec(path: program, arguments: command, environment: Processes.environment())
        printError("gatewayd app-exec: \(error)")
        throw ExitCode(127)
    }
}

/// `gatewayd check -c FILE`: validate and print the effective configuration, like `nginx -t`.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the configuration and print it with every default filled in; exit 0 if valid, 1 if not.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.load()
        print(c.renderTOML(), terminator: "")
        printError("gatewayd: configuration \(c.sourcePath) is valid")
    }
}

/// `gatewayd reload-app NAME -c FILE`: after a deploy, replace a hosted app's processes
/// one at a time with no configuration change and no signal (the master's control socket).
struct ReloadApp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload-app",
        abstract: "Restart a hosted app's processes one at a time, without dropping a request.")

    @Argument(help: "The app's name ([[app]] name).") var name: String
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.load()
        guard let path = c.server.controlPath else {
            printError("gatewayd: \(c.sourcePath) sets neither server.pidfile nor server.control_socket, so the master has no control socket")
            throw ExitCode(1)
        }
        let reply: String
        do {
            let fd = try Socket.connectUnix(path: path)
            defer { try? fd.close() }
            try fd.writeAll(Array("reload-app \(name)\n".utf8))
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1024)
            while let n = try fd.read(into: &buffer, from: 0), n > 0 { bytes += buffer[0..<n] }
            reply = String(decoding: bytes.prefix { $0 != 10 }, as: UTF8.self)
        } catch {
            printError("gatewayd: cannot reach the master at \(path): \(error) (is it running?)")
            throw ExitCode(1)
        }
        print(reply)
        if !reply.hasPrefix("ok") { throw ExitCode(1) }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")
    func run() { print("gatewayd \(Gatewayd.version)") }
}
