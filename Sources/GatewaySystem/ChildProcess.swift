import Glibc
import CGatewayShims

/// A program a worker runs for one request (a CGI script): its pid, which is also its
/// process group, and a pidfd that becomes readable when it ends. The pidfd lets a poll
/// or epoll loop notice the exit even while a grandchild still holds the output pipe.
public struct ChildProcess: Sendable {
    public let pid: pid_t
    public let exitWatch: FileDescriptor

    /// Spawns `path` with its own process group, `directory` as working directory, the
    /// three fds as its stdin, stdout and stderr, and no other fd open.
    public static func spawn(path: String, arguments: [String], environment: [String], directory: String?,
                             stdin: FileDescriptor, stdout: FileDescriptor, stderr: FileDescriptor) throws(SystemError) -> ChildProcess {
        var pid: pid_t = 0
        let (argv, envp) = (Processes.cStrings(arguments), Processes.cStrings(environment))
        defer { Processes.freeCStrings(argv); Processes.freeCStrings(envp) }
        let r = gw_spawn_cgi(&pid, path, argv, envp, directory, stdin.rawValue, stdout.rawValue, stderr.rawValue)
        guard r == 0 else { throw SystemError(errno: r, "posix_spawn(\(path))") }
        // The child is not reaped before we do it, so its pid cannot be reused meanwhile.
        let watch = gw_pidfd_open(pid)
        guard watch >= 0 else {
            let e = errno
            Glibc.kill(-pid, SIGKILL)
            _ = Processes.wait(pid)
            throw SystemError(errno: e, "pidfd_open")
        }
        return ChildProcess(pid: pid, exitWatch: FileDescriptor(watch))
    }

    /// Signals the whole process group (the script and whatever it started). The group
    /// was made by posix_spawn, before the program ran, so nothing in it can leave it
    /// unnoticed except by setsid or setpgid.
    public func signalGroup(_ sig: Int32) {
        Glibc.kill(-pid, sig)
    }

    /// The exit status if the process has ended (reaping it), else nil.
    public func tryReap() -> Processes.ExitStatus? {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return Processes.ExitStatus(waitStatus: status) }
            if r == -1 && errno == EINTR { continue }
            if r == -1 { return .exited(-1) }  // ECHILD: already reaped
            return nil
        }
    }

    /// Waits for the end (after SIGKILL it is near). Closes the pidfd.
    @discardableResult
    public func reap() -> Processes.ExitStatus? {
        defer { try? exitWatch.close() }
        return Processes.wait(pid)
    }
}

/// What the CGI mapper asks about files, without following the last link unless told.
public enum FileSystem {
    public enum Kind: Sendable, Equatable { case regular, directory, symlink, other }

    public struct Info: Sendable, Equatable {
        public let kind: Kind
        /// Any execute bit set (the final check is access(X_OK) by `isExecutable`).
        public let mode: UInt32
    }

    /// lstat (followLinks false) or stat; nil when the path does not exist or is unreadable.
    public static func info(_ path: String, followLinks: Bool = false) -> Info? {
        var st = stat()
        let r = followLinks ? stat(path, &st) : lstat(path, &st)
        guard r == 0 else { return nil }
        let kind: Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        return Info(kind: kind, mode: UInt32(st.st_mode & 0o7777))
    }

    /// Whether this process may execute the file.
    public static func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

    /// The canonical absolute path (every link resolved), or nil.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The first `name` found in the directories of `searchPath` that this process can
    /// execute; a name with a "/" is returned as is.
    public static func findExecutable(_ name: String, searchPath: String) -> String? {
        if name.contains("/") { return name }
        for dir in searchPath.split(separator: ":") where !dir.isEmpty {
            let candidate = dir + "/" + name
            if info(candidate, followLinks: true)?.kind == .regular && isExecutable(candidate) { return candidate }
        }
        return nil
    }
}
