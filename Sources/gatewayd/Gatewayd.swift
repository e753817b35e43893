import ArgumentParser
import GatewayConfig
import TLS
import GatewaySystem

/// `gatewayd`: the command line. Subcommands are thin: they load the configuration and
/// hand it to the module that does the work.
@main
struct Gatewayd: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "A pre-fork HTTP/1.1 gateway for FastCGI apps and CGI scripts.",
        discussion: """
        gatewayd -c gateway.toml starts a master process that binds the listeners and \
        supervises worker processes (sync, thread or epoll); workers forward requests to \
        FastCGI apps or run CGI scripts. Command-line flags override the file.

        Defaults (see `gatewayd check -c FILE` for the full effective configuration):
          bind 127.0.0.1:8000, workers 2 x cores + 1 (here \(2 * Host.cpuCount() + 1)), worker_class sync,
          threads 4, worker_connections 1000, timeout 30 s, graceful_timeout 30 s,
          keepalive 2 s, backlog 2048, max_body_size 100M, header timeout 10 s,
          backend_connect 5 s, backend_read 60 s, queue_timeout 10 s.
        """,
        version: "gatewayd \(version)",
        subcommands: [Run.self, Check.self, ReloadApp.self, VersionCommand.self, WorkerCommand.self, AppExec.self],
        defaultSubcommand: Run.self
    )
}

/// Options every subcommand that reads a configuration takes (gunicorn's names).
struct ConfigOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: "The configuration file.")
    var config: String = "gateway.toml"

    @Option(name: [.customShort("b"), .customLong("bind")],
            help: ArgumentHelp("Listen on ADDRESS (host:port, [v6]:port, unix:/path); repeatable. (default: 127.0.0.1:8000)", valueName: "address"))
    var bind: [String] = []

    @Option(name: [.customShort("w"), .customLong("workers")],
            help: "Number of worker processes. (default: 2 x cores + 1 = \(2 * Host.cpuCount() + 1))")
    var workers: Int?

    @Option(name: [.customShort("k"), .customLong("worker-class")],
            help: "sync, thread or epoll. (default: sync)")
    var workerClass: String?

    @Option(name: .customLong("threads"), help: "Pool threads per thread worker. (default: 4)")
    var threads: Int?

    @Option(name: .customLong("timeout"), help: "Seconds before a silent worker is killed and replaced. (default: 30)")
    var timeout: Double?

    var overrides: ConfigOverrides {
        var o = ConfigOverrides()
        o.bind = bind
        o.workers = workers
        o.workerClass = workerClass
        o.threads = threads
        o.timeout = timeout
        return o
    }

    /// Loads like `load()` but throws the problems instead of printing them (reload on HUP).
    func loadOrThrow() throws -> Configuration {
        let cwd = Host.currentDirectory()
        let absolute = config.hasPrefix("/") ? config : cwd + "/" + config
        let base = String(absolute[..<(absolute.lastIndex(of: "/") ?? absolute.startIndex)])
        let text = String(decoding: try Host.readFile(absolute), as: UTF8.self)
        let loaded = try ConfigLoader.load(text: text, file: config, baseDirectory: base.isEmpty ? "/" : base, cpuCount: Host.cpuCount())
        let applied = try loaded.applying(overrides, baseDirectory: cwd)
        // What only OpenSSL can tell: certificates and keys that load, match, and are current.
        let problems = TLSCheck.problems(applied, now: Host.epochSeconds())
        guard problems.isEmpty else { throw ConfigError(issues: problems) }
        return applied
    }

    /// Reads, validates and applies the flags; on any problem prints every issue
    /// (`file:line: key: message`) to stderr and exits 1.
    func load() throws -> Configuration {
        do {
            return try loadOrThrow()
        } catch let error as SystemError {
            printError("gatewayd: cannot read configuration \(config): \(error)")
        } catch {
            printError("\(error)")
            printError("gatewayd: configuration \(config) is invalid")
        }
        throw ExitCode(1)
    }
}

func printError(_ s: String) {
    var stderr = StandardError()
    print(s, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var s = string
        s.withUTF8 { b in _ = try? FileDescriptor(2).write(UnsafeRawBufferPointer(b)) }
    }
}
