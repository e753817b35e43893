import Foundation
import GatewaySystem
import Glibc

/// A free 127.0.0.1 port, picked by binding port 0.
func freePort() throws -> Int {
    let fd = try Socket.listenTCP(host: "127.0.0.1", port: 0, backlog: 1)
    defer { try? fd.close() }
    return try Socket.localPort(fd)
}

/// The real gatewayd binary running a test configuration; stopped (TERM, then KILL)
/// by `stop()`. Its error log and access log go to files in its directory.
final class GatewaydServer: Sendable {
    let dir: String
    let port: Int
    let configPath: String
    let process = Process()
    var errorLogPath: String { dir + "/error.log" }
    var accessLogPath: String { dir + "/access.log" }

    /// `body` is the configuration without [server].bind, which the server adds.
    /// The worker class every config written by this server names (unless `server` does).
    let workerClass: String

    /// `binary`: another copy of gatewayd to run (the binary upgrade test replaces it on disk).
    init(config body: String, server extra: String = "", workers: Int = 2, workerClass: String = "sync", wait: Bool = true,
         binary: String = gatewaydBinary) throws {
        self.workerClass = workerClass
        dir = "/tmp/gatewayd-it-srv-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = try freePort()
        configPath = dir + "/gateway.toml"
        try writeConfig(body, server: extra, workers: workers)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-c", configPath]
        FileManager.default.createFile(atPath: accessLogPath, contents: nil)
        FileManager.default.createFile(atPath: errorLogPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: accessLogPath)
        process.standardError = FileHandle(forWritingAtPath: errorLogPath)
        try process.run()
        if wait { try waitUntilServing(workers: workers) }
    }

    func writeConfig(_ body: String, server extra: String = "", workers: Int = 2) throws {
        let cls = extra.contains("worker_class") ? "" : "worker_class = \"\(workerClass)\"\n"
        // "$PORT" in the body is the server's port (a [[tls]] bind names it).
        let text = "[server]\nbind = [\"127.0.0.1:\(port)\"]\nworkers = \(workers)\npidfile = \"\(dir)/gatewayd.pid\"\n\(cls)\(extra)\n"
            + body.replacingOccurrences(of: "$PORT", with: String(port)) + "\n"
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    var masterPID: Int32 { process.processIdentifier }

    /// Waits until every worker has started (a child is a worker once its exec is done)
    /// and the port accepts connections.
    func waitUntilServing(workers: Int = 1, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { throw TestFailure("gatewayd exited: \(errorLog)") }
            if workerPIDs().count >= workers, let fd = try? Socket.connectTCP(host: "127.0.0.1", port: port) {
                try? fd.close()
                return
            }
            usleep(20_000)
        }
        throw TestFailure("gatewayd did not start serving: \(errorLog)")
    }

    /// The master's children, from /proc: its workers and its hosted app processes.
    func childPIDs() -> [Int32] {
        let path = "/proc/\(masterPID)/task/\(masterPID)/children"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// The master's worker processes (`gatewayd worker ...`).
    func workerPIDs() -> [Int32] { childPIDs().filter { commandLine($0).dropFirst().first == "worker" } }

    /// The master's hosted app processes whose command line contains `fragment`.
    func appPIDs(_ fragment: String) -> [Int32] {
        childPIDs().filter { pid in
            let args = commandLine(pid)
            return args.dropFirst().first != "worker" && args.contains { $0.contains(fragment) }
        }
    }

    var errorLog: String { (try? String(contentsOfFile: errorLogPath, encoding: .utf8)) ?? "" }
    var accessLog: String { (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(masterPID, sig) }

    /// Waits for the master to exit; its exit status, or nil on timeout.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        if process.isRunning {
            let workers = workerPIDs()
            kill(masterPID, SIGTERM)
            if waitForExit(timeout: 5) == nil {
                kill(masterPID, SIGKILL)
                for w in workers { kill(w, SIGKILL) }
                process.waitUntilExit()
            }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop() }
}

/// A process's argv, from /proc.
func commandLine(_ pid: Int32) -> [String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
    return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
}

/// Resident memory of a process, and its peak, in KiB (from /proc/PID/status).
func memoryKiB(_ pid: Int32) -> (rss: Int, peak: Int) {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Int {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
    }
    return (field("VmRSS"), field("VmHWM"))
}

struct HTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A minimal blocking HTTP/1.1 client (Connection: close), for tests and small loads.
func http(_ port: Int, _ method: String = "GET", _ path: String, headers: [(String, String)] = [],
          body: [UInt8] = [], chunked: Bool = false, timeout: Double = 30) throws -> HTTPResponse {
    let fd = try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
    defer { try? fd.close() }
    var req = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    for (n, v) in headers { req += "\(n): \(v)\r\n" }
    if chunked { req += "Transfer-Encoding: chunked\r\n" } else if !body.isEmpty || method == "POST" || method == "PUT" { req += "Content-Length: \(body.count)\r\n" }
    req += "\r\n"
    var out = Array(req.utf8)
    if chunked {
        var i = 0
        while i < body.count {
            let n = min(100_000, body.count - i)
            out += Array((String(n, radix: 16) + "\r\n").utf8) + body[i..<(i + n)] + [13, 10]
            i += n
        }
        out += Array("0\r\n\r\n".utf8)
    } else {
        out += body
    }
    try fd.writeAll(out)
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        // (A second with nothing to read goes round again: a read now would block past the deadline.)
        let readable = try fd.waitReadable(timeoutMilliseconds: 1000)
        if Date() > deadline { throw TestFailure("response timed out") }
        guard readable else { continue }
        guard let n = try fd.read(into: &chunk, from: 0) else { continue }
        if n == 0 { break }
        data += chunk[0..<n]
    }
    return try parseResponse(data)
}

func parseResponse(_ data: [UInt8]) throws -> HTTPResponse {
    guard let end = findHeadEnd(data) else { throw TestFailure("no response head in \(data.count) bytes: \(String(decoding: data.prefix(200), as: UTF8.self))") }
    let lines = String(decoding: data[0..<end], as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
    let statusParts = lines[0].split(separator: " ")
    guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestFailure("bad status line \(lines[0])") }
    let headers = lines.dropFirst().compactMap { l -> (String, String)? in
        guard let c = l.firstIndex(of: ":") else { return nil }
        return (String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
    }
    var body = Array(data[(end + 4)...])
    if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
        var decoded: [UInt8] = []
        var i = 0
        while true {
            guard let lf = body[i...].firstIndex(of: 10) else { throw TestFailure("truncated chunked body") }
            let sizeText = String(decoding: body[i..<lf], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else { throw TestFailure("bad chunk size \(sizeText)") }
            i = lf + 1
            if size == 0 { break }
            guard i + size + 2 <= body.count else { throw TestFailure("truncated chunk") }
            decoded += body[i..<(i + size)]
            i += size + 2
        }
        body = decoded
    } else if let cl = headers.first(where: { $0.0.lowercased() == "content-length" }).flatMap({ Int($0.1) }) {
        guard body.count >= cl else { throw TestFailure("body shorter than Content-Length") }
        body = Array(body.prefix(cl))
    }
    return HTTPResponse(status: status, headers: headers, body: body)
}

func findHeadEnd(_ d: [UInt8]) -> Int? {
    guard d.count >= 4 else { return nil }
    for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i }
    return nil
}

/// Runs `count` requests on `concurrency` threads; returns the failures (status >= 500 or errors).
func load(concurrency: Int, count: Int, _ request: @escaping @Sendable (Int) throws -> HTTPResponse) -> [String] {
    let lock = NSLock()
    nonisolated(unsafe) var failures: [String] = []
    nonisolated(unsafe) var next = 0
    let group = DispatchGroup()
    for _ in 0..<concurrency {
        group.enter()
        Thread.detachNewThread {
            while true {
                lock.lock()
                let i = next
                next += 1
                lock.unlock()
                if i >= count { break }
                do {
                    let r = try request(i)
                    if r.status >= 500 { lock.lock(); failures.append("request \(i): status \(r.status)"); lock.unlock() }
                } catch {
                    lock.lock(); failures.append("request \(i): \(error)"); lock.unlock()
                }
            }
            group.leave()
        }
    }
    group.wait()
    return failures
}
