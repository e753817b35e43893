import Foundation
import Testing

/// The gatewayd binary built by `swift build` (or $GATEWAYD_BIN).
let gatewaydBinary: String = ProcessInfo.processInfo.environment["GATEWAYD_BIN"] ?? repositoryRoot + "/.build/debug/gatewayd"

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func runGatewayd(_ args: [String]) throws -> RunResult {
    guard FileManager.default.isExecutableFile(atPath: gatewaydBinary) else {
        throw TestFailure("gatewayd binary not found at \(gatewaydBinary): run `swift build` first (scripts/test does)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: gatewaydBinary)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
    let out = Foundation.Pipe(), err = Foundation.Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A copy of config/gateway.toml with one line replaced; returns its path and that line's number.
func brokenConfig(replacing old: String, with new: String) throws -> (String, Int) {
    let text = try String(contentsOfFile: repositoryRoot + "/config/gateway.toml", encoding: .utf8)
    var lines = text.components(separatedBy: "\n")
    guard let i = lines.firstIndex(of: old) else { throw TestFailure("config/gateway.toml has no line \(old)") }
    lines[i] = new
    let dir = repositoryRoot + "/config"
    let path = dir + "/broken-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).toml"
    try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return (path, i + 1)
}

@Suite("gatewayd command line")
struct CLITests {
    @Test func checkAcceptsTheShippedConfiguration() throws {
        let r = try runGatewayd(["check", "-c", "config/gateway.toml"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("[server]"))
        #expect(r.stdout.contains("workers = 2"))
        #expect(r.stdout.contains("bind = [\"127.0.0.1:8080\"]"))
        #expect(r.stdout.contains("command = [\"\(repositoryRoot)/apps/bin/c-app\"]"))
        #expect(r.stdout.contains("pm = \"ondemand\""))
        #expect(r.stdout.contains("cwd = \"\(repositoryRoot)/config\""))
        #expect(r.stderr.contains("configuration config/gateway.toml is valid"))
    }

    @Test func checkRejectsABrokenCopyWithFileAndLine() throws {
        let (path, line) = try brokenConfig(replacing: "workers = 2", with: "workers = \"four\"")
        defer { unlink(path) }
        let r = try runGatewayd(["check", "-c", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(path):\(line): server.workers: expected a positive integer, got \"four\""), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func unknownKeysGetADidYouMean() throws {
        let (path, line) = try brokenConfig(replacing: "keepalive = 2                # seconds an idle client connection is kept", with: "keepalve = 2")
        defer { unlink(path) }
        let r = try runGatewayd(["check", "-c", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(path):\(line): server.keepalve: unknown key; did you mean \"keepalive\"?"), "\(r.stderr)")
    }

    @Test func syntaxErrorsHaveALine() throws {
        let (path, line) = try brokenConfig(replacing: "[limits]", with: "[limits")
        defer { unlink(path) }
        let r = try runGatewayd(["check", "-c", path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(path):\(line): TOML syntax:"), "\(r.stderr)")
    }

    @Test func missingFile() throws {
        let r = try runGatewayd(["check", "-c", "/nonexistent/gateway.toml"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot read configuration /nonexistent/gateway.toml: open(/nonexistent/gateway.toml): No such file or directory"))
    }

    @Test func gunicornFlagsOverrideTheFile() throws {
        let r = try runGatewayd(["check", "-c", "config/gateway.toml", "-w", "3", "-k", "thread", "--threads", "6",
                                 "-b", "127.0.0.1:9999", "-b", "unix:/tmp/gw.sock", "--timeout", "45"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("workers = 3"))
        #expect(r.stdout.contains("worker_class = \"thread\""))
        #expect(r.stdout.contains("threads = 6"))
        #expect(r.stdout.contains("bind = [\"127.0.0.1:9999\", \"unix:/tmp/gw.sock\"]"))
        #expect(r.stdout.contains("timeout = 45"))
        let bad = try runGatewayd(["check", "-c", "config/gateway.toml", "-w", "0", "-k", "gevent"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("command line: --workers: expected 1-1024, got 0"))
        #expect(bad.stderr.contains("command line: --worker-class: expected one of sync, thread, epoll, got \"gevent\""))
    }

    @Test func versionAndHelp() throws {
        let v = try runGatewayd(["--version"])
        #expect(v.status == 0)
        #expect(v.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "gatewayd 0.1.0")
        let h = try runGatewayd(["--help"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("Defaults"))
        #expect(h.stdout.contains("workers 2 x cores + 1"))
        let ch = try runGatewayd(["check", "--help"])
        #expect(ch.stdout.contains("(default: gateway.toml)"))
        #expect(ch.stdout.contains("(default: sync)"))
    }

    @Test func runRefusesABrokenConfiguration() throws {
        let bad = try runGatewayd(["-c", "/nonexistent.toml"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("cannot read configuration /nonexistent.toml"))
    }
}
