import Foundation
import Testing
import Glibc

/// USR2 binary upgrade (nginx's and gunicorn's): a new master from the binary on disk
/// shares the listeners, then TERM drains the old one, under keep-alive load with no
/// failed request; a new binary that cannot boot leaves the running master serving.
@Suite("binary upgrade (USR2)", .serialized)
struct UpgradeTests {
    /// A process that is gone or a zombie (a reparented master nobody reaps here).
    static func gone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }

    static func pid(in file: String) -> Int32? {
        (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func children(_ pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    /// Puts a copy of `source` at `path` by rename (a new inode, as a package upgrade
    /// does), with `extra` bytes after it so it is another build, byte for byte.
    static func install(_ source: String, at path: String, extra: String) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        bytes.append(Data(extra.utf8))
        try bytes.write(to: URL(fileURLWithPath: path + ".tmp"))
        chmod(path + ".tmp", 0o755)
        guard rename(path + ".tmp", path) == 0 else { throw TestFailure("rename to \(path) failed") }
    }

    @Test("USR2, then TERM to the old master, under keep-alive load: 0 failed requests, the new build answers", arguments: ["sync", "epoll"])
    func upgradeUnderLoad(workerClass: String) throws {
        let bin = "/tmp/gatewayd-it-bin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: bin) }
        let binary = bin + "/gatewayd"
        try Self.install(gatewaydBinary, at: binary, extra: "")
        let server = try GatewaydServer(config: DrainTests.config(), server: "keepalive = 2\nthreads = 4", workers: 2,
                                        workerClass: workerClass, binary: binary)
        var newMaster: Int32? = nil
        defer {
            if let p = newMaster, !Self.gone(p) {
                kill(p, SIGTERM)
                let deadline = Date().addingTimeInterval(10)
                while !Self.gone(p) && Date() < deadline { usleep(20_000) }
                if !Self.gone(p) { kill(p, SIGKILL) }
            }
            server.stop()
        }
        let pidfile = server.dir + "/gatewayd.pid"
        let old = server.masterPID
        #expect(Self.pid(in: pidfile) == old)

        let load = try DrainTests.Load(port: server.port, path: "/c/hello")
        usleep(300_000)
        try Self.install(gatewaydBinary, at: binary, extra: "\nanother build\n")
        let installed = try FileManager.default.attributesOfItem(atPath: binary)[.systemFileNumber] as? UInt64
        server.signal(SIGUSR2)
        // The new master writes the pidfile, the old one's is the .oldbin, and the new
        // one's workers run beside the old ones.
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let p = Self.pid(in: pidfile), p != old, Self.children(p).count >= 2 { newMaster = p; break }
            usleep(50_000)
        }
        let fresh = try #require(newMaster, "no new master: \(server.errorLog)")
        #expect(Self.pid(in: pidfile + ".oldbin") == old)
        usleep(500_000)
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 15) == 0, "\((try? String(contentsOfFile: "/proc/\(old)/status", encoding: .utf8))?.prefix(200) ?? "gone") \(Self.children(old))")
        usleep(300_000)
        let result = try load.finish()
        #expect(result.failures == 0, "\(workerClass): \(result.errors)")
        #expect(result.requests > 100)

        // Only the new build serves now: it runs the file installed last, and owns the pidfile.
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(fresh)/exe")
        #expect(exe == binary, "the new master runs \(exe)")
        var st = stat()
        #expect(stat("/proc/\(fresh)/exe", &st) == 0 && UInt64(st.st_ino) == installed)
        #expect(Self.pid(in: pidfile) == fresh && !FileManager.default.fileExists(atPath: pidfile + ".oldbin"))
        #expect(server.errorLog.contains("USR2: started a new master (pid \(fresh))"))
        #expect(server.errorLog.contains("binary upgrade: took over 127.0.0.1:\(server.port) from the old master"))

        // A binary that cannot boot: the running master keeps serving, pidfile and all.
        try "#!/bin/sh\necho 'broken build' >&2\nexit 1\n".write(toFile: binary + ".tmp", atomically: true, encoding: .utf8)
        chmod(binary + ".tmp", 0o755)
        #expect(rename(binary + ".tmp", binary) == 0)
        kill(fresh, SIGUSR2)
        let failed = Date().addingTimeInterval(10)
        while !server.errorLog.contains("binary upgrade: the new master") && Date() < failed { usleep(50_000) }
        #expect(server.errorLog.contains("exited (exit code 1)"), "\(server.errorLog)")
        #expect(server.errorLog.contains("this master (pid \(fresh)) keeps serving"))
        #expect(Self.pid(in: pidfile) == fresh && !FileManager.default.fileExists(atPath: pidfile + ".oldbin"))
        #expect(try http(server.port, "GET", "/c/hello").status == 200)
    }
}
