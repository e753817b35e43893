import Foundation
import GatewaySystem
import Testing
import Glibc

/// systemd socket activation, with systemd's part played by a small Python launcher:
/// it binds the socket, puts it on fd 3, sets LISTEN_FDS and LISTEN_PID to its own pid,
/// and execs gatewayd (the pid stays the same, as under systemd).
@Suite("systemd socket activation", .serialized)
struct SocketActivationTests {
    static let launcher = """
    import os, socket, sys
    port, binary, conf, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64)
    if s.fileno() != 3: os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ["LISTEN_FDS"] = "1"; os.environ["LISTEN_PID"] = str(os.getpid())
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND); os.dup2(fd, 2); os.dup2(fd, 1)
    os.execv(binary, [binary, "-c", conf])
    """

    func launch(passing port: Int, bind: Int, dir: String) throws -> Process {
        let conf = dir + "/gateway.toml"
        try """
        [server]
        bind = ["127.0.0.1:\(bind)"]
        workers = 1
        [[route]]
        path = "/"
        static = "\(dir)"
        """.write(toFile: conf, atomically: true, encoding: .utf8)
        try "activated\n".write(toFile: dir + "/index.html", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", Self.launcher, String(port), gatewaydBinary, conf, dir + "/error.log"]
        try p.run()
        return p
    }

    /// The first answer to GET / on `port`, trying for up to 10 s while gatewayd starts.
    func firstAnswer(_ port: Int) -> HTTPResponse? {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let r = try? http(port, "GET", "/") { return r }
            usleep(50_000)
        }
        return nil
    }

    func stop(_ p: Process) {
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    @Test("gatewayd serves on the socket systemd passed, for the bind address it listens on")
    func adopted() throws {
        let dir = "/tmp/gatewayd-it-sd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try freePort()
        let p = try launch(passing: port, bind: port, dir: dir)
        defer { stop(p) }
        #expect(firstAnswer(port)?.text == "activated\n")
        let log = (try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? ""
        #expect(log.contains("socket activation: systemd passed 127.0.0.1:\(port)"), "\(log)")
        #expect(!log.contains("Address already in use"), "it must not bind the port a second time")
    }

    @Test("a passed socket that no bind address names is closed, with a log line")
    func unclaimed() throws {
        let dir = "/tmp/gatewayd-it-sd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let passed = try freePort(), bound = try freePort()
        let p = try launch(passing: passed, bind: bound, dir: dir)
        defer { stop(p) }
        #expect(firstAnswer(bound)?.text == "activated\n", "the bind address is bound as usual")
        let log = (try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? ""
        #expect(log.contains("systemd passed a socket on 127.0.0.1:\(passed), which is not in server.bind"), "\(log)")
        #expect((try? Socket.connectTCP(host: "127.0.0.1", port: passed)) == nil, "the unclaimed socket is closed")
    }
}
