import ArgumentParser
import Arbiter
import GatewayConfig
import GatewayLogging
import GatewaySystem
import Logging
import Workers

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
        let ctx = WorkerContext(config: config, logger: logger, errorSink: sink, accessLog: access)
        ctx.onWait = { process.beatAndCheck(ctx) }
        switch config.server.workerClass {
        case .sync:
            let code = SyncWorker(context: ctx, process: process).run()
            if code != 0 { throw ExitCode(code) }
        case .thread, .epoll:
            logger.critical("cannot boot: worker_class \"\(config.server.workerClass.rawValue)\" is not built yet (issue #5); use sync")
            throw bootFailure
        }
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

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")
    func run() { print("gatewayd \(Gatewayd.version)") }
}
