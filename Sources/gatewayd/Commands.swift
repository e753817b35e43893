import ArgumentParser
import GatewayConfig

/// `gatewayd [-c FILE]`: start serving. Until the master process lands (issue #3) this
/// validates the configuration and says plainly that nothing is served yet.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Start the master and its workers (the default).")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.load()
        let binds = c.server.bind.map(\.description).joined(separator: ", ")
        printError("gatewayd: configuration \(c.sourcePath) is valid: \(c.server.workers) \(c.server.workerClass.rawValue) workers on \(binds), \(c.apps.count) apps, \(c.routes.count) routes")
        printError("gatewayd: the master process is not built yet (issue #3): nothing is served, exiting")
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
