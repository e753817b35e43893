import Foundation
import GatewaySystem
import Testing
import Glibc

/// A real CGI program not written here: git's http-backend behind gatewayd serves a
/// clone and a push (smart HTTP), under every worker class. The push carries 3 MiB of
/// incompressible data, more than git's http.postBuffer (1 MiB), so git sends it as a
/// chunked request body.
@Suite("git http-backend over CGI", .serialized)
struct GitHTTPBackendTests {
    static let backend = "/usr/lib/git-core/git-http-backend"

    /// git with a clean, fixed identity and no system or user configuration.
    static func git(_ args: [String], cwd: String, trace: Bool = false) throws -> RunResult {
        var env = ["PATH": "/usr/bin:/bin", "HOME": cwd, "GIT_CONFIG_NOSYSTEM": "1",
                   "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
                   "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"]
        if trace {
            env["GIT_TRACE_CURL"] = "1"
            env["GIT_TRACE_CURL_NO_DATA"] = "1"
        }
        let r = try runProgram("/usr/bin/git", args, cwd: cwd, env: env)
        if r.status != 0 { throw TestFailure("git \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)") }
        return r
    }

    @Test("clone, push (chunked), clone again", arguments: workerClasses)
    func cloneAndPush(workerClass: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.backend) else {
            Issue.record("SKIPPED LOUDLY: \(Self.backend) is missing; scripts/setup installs git")
            return
        }
        let root = "/tmp/gatewayd-it-git-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/repos", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.git(["init", "-q", "--bare", "-b", "main", "repos/project.git"], cwd: root)
        try Self.git(["config", "http.receivepack", "true"], cwd: root + "/repos/project.git")
        // A first commit, pushed locally, so the clone has something to fetch.
        try Self.git(["init", "-q", "-b", "main", "seed"], cwd: root)
        try "hello\n".write(toFile: root + "/seed/README", atomically: true, encoding: .utf8)
        try Self.git(["add", "README"], cwd: root + "/seed")
        try Self.git(["commit", "-q", "-m", "first"], cwd: root + "/seed")
        try Self.git(["push", "-q", root + "/repos/project.git", "main"], cwd: root + "/seed")

        let server = try GatewaydServer(config: """
            [limits]
            max_body_size = "64M"
            [[route]]
            path = "/git"
            cgi = "\(Self.backend)"
            env = { GIT_PROJECT_ROOT = "\(root)/repos", GIT_HTTP_EXPORT_ALL = "1" }
            """, workers: 1, workerClass: workerClass)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/git/project.git"

        try Self.git(["clone", "-q", url, "work"], cwd: root)
        #expect(try String(contentsOfFile: root + "/work/README", encoding: .utf8) == "hello\n")

        var noise = [UInt8](repeating: 0, count: 3 << 20)
        for i in noise.indices { noise[i] = UInt8.random(in: 0...255) }
        try Data(noise).write(to: URL(fileURLWithPath: root + "/work/blob.bin"))
        try Self.git(["add", "blob.bin"], cwd: root + "/work")
        try Self.git(["commit", "-q", "-m", "three megabytes"], cwd: root + "/work")
        let push = try Self.git(["push", "origin", "main"], cwd: root + "/work", trace: true)
        #expect(push.stderr.contains("Transfer-Encoding: chunked"), "git sent the pack chunked")

        try Self.git(["clone", "-q", url, "again"], cwd: root)
        let copy = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/again/blob.bin")))
        #expect(copy == noise)
        let log = try Self.git(["log", "--format=%s"], cwd: root + "/again")
        #expect(log.stdout == "three megabytes\nfirst\n")
        #expect(server.accessLog.contains("POST /git/project.git/git-receive-pack"))
    }
}
