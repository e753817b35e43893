import Foundation
import FastCGIWire
import GatewaySystem
import Glibc

/// The repository root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A FastCGI app started the way a process manager starts it: its listening socket on
/// fd 0. Stopped (SIGTERM, then SIGKILL) and its socket removed by `stop()`.
final class FastCGIApp: Sendable {
    let name: String
    let socketPath: String
    let processes: [Process]
    var process: Process { processes[0] }

    /// `instances` processes share the one listening socket (as spawn-fcgi -F does).
    init(name: String, command: [String], cwd: String? = nil, env: [String: String] = [:], instances: Int = 1) throws {
        self.name = name
        socketPath = "/tmp/gatewayd-it-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let listener = try Socket.listenUnix(path: socketPath, backlog: 128, mode: 0o600)
        defer { try? listener.close() }
        var started: [Process] = []
        for _ in 0..<instances {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = command
            // The PATH of the test run, so python3 is the one scripts/setup installed flup into.
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            process.environment = ["PATH": path].merging(env) { $1 }
            if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
            process.standardInput = FileHandle(fileDescriptor: listener.rawValue, closeOnDealloc: false)
            process.standardOutput = FileHandle.nullDevice
            do { try process.run() } catch {
                for p in started { p.terminate() }
                throw error
            }
            started.append(process)
        }
        processes = started
    }

    func stop() {
        for process in processes where process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(0.3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        unlink(socketPath)
    }

    deinit { stop() }
}

/// What a FastCGI app answered to one request.
struct FastCGIReply {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var appStatus: UInt32 = 0
    var protocolStatus: FastCGIProtocolStatus = .requestComplete
}

/// A blocking FastCGI client connection, written with the project's codec.
final class FastCGIConnection {
    let fd: FileDescriptor
    var decoder = FastCGIDecoder(requestID: 1)
    var pending: [UInt8] = []

    init(path: String, attempts: Int = 100) throws {
        var last: Error? = nil
        for _ in 0..<attempts {
            do {
                fd = try Socket.connectUnix(path: path)
                return
            } catch {
                last = error
                usleep(20_000)
            }
        }
        throw last!
    }

    deinit { try? fd.close() }

    func send(_ bytes: [UInt8]) throws { try fd.writeAll(bytes) }

    func request(id: UInt16 = 1, params: [FastCGIPair], body: [UInt8] = [], keepConnection: Bool = false) throws -> FastCGIReply {
        var out: [UInt8] = []
        FastCGIEncoder.appendBeginRequest(requestID: id, keepConnection: keepConnection, into: &out)
        FastCGIEncoder.appendParams(requestID: id, params, into: &out)
        body.withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: id, bytes: $0, into: &out) }
        FastCGIEncoder.appendEndOfStream(.stdin, requestID: id, into: &out)
        try send(out)
        decoder.startRequest(id)
        return try readReply()
    }

    func readReply() throws -> FastCGIReply {
        var reply = FastCGIReply()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            while true {
                let s = try decoder.decode(pending[...])
                switch s.event {
                case .stdout(let r): reply.stdout += pending[r]
                case .stderr(let r): reply.stderr += pending[r]
                case .endRequest(let a, let p):
                    reply.appStatus = a
                    reply.protocolStatus = p
                    pending.removeFirst(s.consumed)
                    return reply
                default: break
                }
                pending.removeFirst(s.consumed)
                if s.event == nil && s.consumed == 0 { break }
            }
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) } ?? 0
            guard n > 0 else { throw TestFailure("app closed the connection before END_REQUEST") }
            pending += chunk[0..<n]
        }
    }

    /// Sends GET_VALUES and returns the management reply.
    func getValues(_ names: [String]) throws -> [FastCGIPair] {
        var out: [UInt8] = []
        FastCGIEncoder.appendGetValues(names, into: &out)
        try send(out)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let s = try decoder.decode(pending[...])
            if case .getValuesResult(let pairs)? = s.event { pending.removeFirst(s.consumed); return pairs }
            pending.removeFirst(s.consumed)
            if s.event == nil && s.consumed == 0 {
                let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) } ?? 0
                guard n > 0 else { throw TestFailure("closed before GET_VALUES_RESULT") }
                pending += chunk[0..<n]
            }
        }
    }
}

/// sha256 of `bytes`, by the system's sha256sum (an independent implementation).
func sha256Hex(_ bytes: [UInt8]) throws -> String {
    let path = "/tmp/gatewayd-it-digest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(path) }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    let pipe = Foundation.Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

/// php-fpm from Debian with a pool of `children` static processes on a unix socket.
final class PHPFPM: Sendable {
    let dir: String
    let process = Process()
    var socketPath: String { dir + "/fpm.sock" }

    /// `pool` adds lines to the pool section (php_admin_value[...] settings).
    init(children: Int = 2, pool: String = "") throws {
        dir = "/tmp/gatewayd-it-fpm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let conf = """
        [global]
        pid = \(dir)/fpm.pid
        error_log = \(dir)/fpm.log
        daemonize = no
        [www]
        listen = \(dir)/fpm.sock
        listen.mode = 0600
        pm = static
        pm.max_children = \(children)
        catch_workers_output = yes
        php_admin_value[session.save_path] = \(dir)
        \(pool)
        """
        try conf.write(toFile: dir + "/fpm.conf", atomically: true, encoding: .utf8)
        let binary = ["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else { throw TestFailure("php-fpm is not installed (scripts/setup installs it)") }
        process.executableURL = URL(fileURLWithPath: binary)
        // -R: the tests may run as root; -F: stay in the foreground so stop() can end it.
        process.arguments = ["-R", "-F", "-y", dir + "/fpm.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socketPath) && Date() < deadline { usleep(20_000) }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning {
                // Its children too: php-fpm's pool processes are in its process group.
                kill(-process.processIdentifier, SIGKILL)
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }
}
