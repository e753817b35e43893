import Glibc
import CGatewayShims

/// Starting, signalling and reaping child processes. Never fork without exec: children
/// are started with posix_spawn (the Swift runtime may own threads).
public enum Processes {
    /// Spawns `path` with `arguments` (argv[0] included) and `environment`; each
    /// (source, target) pair in `fds` becomes fd `target` in the child, inherited.
    /// Every other fd is close-on-exec already.
    public static func spawn(path: String, arguments: [String], environment: [String],
                             fds: [(source: FileDescriptor, target: Int32)] = []) throws(SystemError) -> pid_t {
        var pid: pid_t = 0
        let (argv, envp) = (cStrings(arguments), cStrings(environment))
        defer { freeCStrings(argv); freeCStrings(envp) }
        let src = fds.map(\.source.rawValue)
        let dst = fds.map(\.target)
        let r = gw_spawn(&pid, path, argv, envp, src, dst, Int32(fds.count))
        guard r == 0 else { throw SystemError(errno: r, "posix_spawn(\(path))") }
        return pid
    }

    /// A NULL-terminated array of C strings (argv, envp) for posix_spawn; free with `freeCStrings`.
    static func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] { strings.map { strdup($0) } + [nil] }
    static func freeCStrings(_ array: [UnsafeMutablePointer<CChar>?]) { for p in array { free(p) } }

    public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// Decodes a waitpid status (WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import).
        init(waitStatus status: Int32) {
            let termsig = status & 0x7F
            self = termsig == 0 ? .exited((status >> 8) & 0xFF) : .signaled(termsig)
        }

        public var description: String {
            switch self {
            case .exited(let c): return "exit code \(c)"
            case .signaled(let s): return "signal \(s) (\(String(cString: strsignal(s))))"
            }
        }
    }

    /// Every child that has ended, without blocking.
    public static func reap() -> [(pid: pid_t, status: ExitStatus)] {
        var out: [(pid_t, ExitStatus)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            out.append((pid, ExitStatus(waitStatus: status)))
        }
        return out
    }

    /// Waits for one specific child (blocking).
    public static func wait(_ pid: pid_t) -> ExitStatus? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return nil }
        }
        return ExitStatus(waitStatus: status)
    }

    @discardableResult
    public static func signal(_ pid: pid_t, _ sig: Int32) -> Bool { Glibc.kill(pid, sig) == 0 }

    public static var currentPID: pid_t { getpid() }
    public static var parentPID: pid_t { getppid() }

    /// The running executable, for spawning workers of the same binary.
    public static func executablePath() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(cString: buf) : CommandLine.arguments[0]
    }

    public static func exit(_ code: Int32) -> Never { Glibc.exit(code) }
}

/// Signal handling through a self-pipe: handlers only write the signal number.
public enum Signals {
    public static let term = SIGTERM, int = SIGINT, quit = SIGQUIT, hup = SIGHUP
    public static let ttin = SIGTTIN, ttou = SIGTTOU, usr1 = SIGUSR1, usr2 = SIGUSR2, chld = SIGCHLD
    public static let abrt = SIGABRT, kill = SIGKILL

    /// A signal by its name ("SIGUSR1"), for settings such as an app's dump_signal.
    public static func number(named name: String) -> Int32? {
        let known: [String: Int32] = ["SIGUSR1": SIGUSR1, "SIGUSR2": SIGUSR2, "SIGQUIT": SIGQUIT, "SIGHUP": SIGHUP,
                                      "SIGWINCH": SIGWINCH, "SIGPWR": SIGPWR, "SIGURG": SIGURG, "SIGTERM": SIGTERM, "SIGINT": SIGINT]
        return known[name]
    }

    /// Installs handlers for `signals`; returns the non-blocking read end to watch.
    public static func pipe(for signals: [Int32]) throws(SystemError) -> FileDescriptor {
        let (r, w) = try Pipe.make(nonBlocking: true)
        _ = try syscall("sigaction") { gw_install_signal_pipe(w.rawValue, signals, Int32(signals.count)) }
        return r
    }

    /// Reads every pending signal number from the self-pipe.
    public static func drain(_ fd: FileDescriptor) -> [Int32] {
        var buf = [UInt8](repeating: 0, count: 64)
        var out: [Int32] = []
        while let n = try? buf.withUnsafeMutableBytes({ try fd.read(into: $0) }), n > 0 {
            out += buf[0..<n].map { Int32($0) }
        }
        return out
    }

    public static func ignore(_ sig: Int32) { Glibc.signal(sig, SIG_IGN) }
    public static func setDefault(_ sig: Int32) { Glibc.signal(sig, SIG_DFL) }

    /// This process gets `sig` when its parent dies.
    public static func onParentDeath(_ sig: Int32) { _ = gw_set_parent_death_signal(sig) }

    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: return "TERM"
        case SIGINT: return "INT"
        case SIGQUIT: return "QUIT"
        case SIGHUP: return "HUP"
        case SIGTTIN: return "TTIN"
        case SIGTTOU: return "TTOU"
        case SIGUSR1: return "USR1"
        case SIGCHLD: return "CHLD"
        default: return "signal \(sig)"
        }
    }
}

extension Processes {
    /// This process's environment, as "NAME=value" strings (handed on to workers).
    public static func environment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    /// Drops privileges to `user` (and `group`, else the user's group). Only root can.
    public static func switchUser(_ user: String?, group: String?) throws(SystemError) {
        guard user != nil || group != nil else { return }
        let (uid, gid) = try userAndGroupIDs(user, group: group)
        if let gid {
            _ = try syscall("setgroups") { setgroups(1, [gid]) }
            _ = try syscall("setgid") { setgid(gid) }
        }
        if let uid { _ = try syscall("setuid") { setuid(uid) } }
    }

    /// The ids of `user` and `group`; the group defaults to the user's own.
    static func userAndGroupIDs(_ user: String?, group: String?) throws(SystemError) -> (uid: uid_t?, gid: gid_t?) {
        var gid: gid_t? = nil
        var uid: uid_t? = nil
        if let user {
            guard let pw = getpwnam(user) else { throw SystemError(errno: ENOENT, "getpwnam(\(user)): no such user") }
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
        }
        if let group {
            guard let gr = getgrnam(group) else { throw SystemError(errno: ENOENT, "getgrnam(\(group)): no such group") }
            gid = gr.pointee.gr_gid
        }
        return (uid, gid)
    }
}

extension FileDescriptor {
    public static let standardError = FileDescriptor(2)
}
