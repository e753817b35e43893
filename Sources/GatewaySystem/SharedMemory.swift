import Glibc
import CGatewayShims

/// A memory region shared by the master and its workers: an unlinked file mapped
/// MAP_SHARED. The master creates it; a worker maps the fd it inherits. It holds
/// plain integers, a robust process-shared mutex and a futex word (see AppPool's
/// SlotTable), so it must never hold pointers or Swift objects.
///
/// @unchecked Sendable: every field is a `let`; the bytes behind `base` are shared by
/// design and guarded by their users (SlotTable's robust process-shared mutex per app,
/// SharedCounters' atomic adds), never read or written here.
public final class SharedMemory: @unchecked Sendable {
    public let fd: FileDescriptor
    public let base: UnsafeMutableRawPointer
    public let size: Int

    init(fd: FileDescriptor, size: Int) throws(SystemError) {
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0), p != MAP_FAILED else {
            throw SystemError(errno: errno, "mmap(\(size) bytes)")
        }
        self.fd = fd
        self.base = p
        self.size = size
    }

    /// A new zero-filled region of `size` bytes.
    public static func create(size: Int) throws(SystemError) -> SharedMemory {
        let fd = try Host.anonymousFile()
        _ = try syscall("ftruncate") { ftruncate(fd.rawValue, off_t(size)) }
        return try SharedMemory(fd: fd, size: size)
    }

    /// Maps a region created by another process, whole.
    public static func map(_ fd: FileDescriptor) throws(SystemError) -> SharedMemory {
        var st = stat()
        _ = try syscall("fstat") { fstat(fd.rawValue, &st) }
        return try SharedMemory(fd: fd, size: Int(st.st_size))
    }

    deinit {
        munmap(base, size)
    }
}

/// A mutex that lives in shared memory: process-shared and robust, so a worker
/// killed while holding it cannot wedge the others.
public enum SharedMutex {
    /// Bytes to reserve for one mutex.
    public static var size: Int { Int(gw_shared_mutex_size()) }

    public static func initialize(_ at: UnsafeMutableRawPointer) {
        _ = gw_shared_mutex_init(at)
    }

    /// Locks; true when the previous holder died holding it (the lock is recovered).
    @discardableResult
    public static func lock(_ at: UnsafeMutableRawPointer) -> Bool { gw_shared_mutex_lock(at) == 1 }

    public static func unlock(_ at: UnsafeMutableRawPointer) { _ = gw_shared_mutex_unlock(at) }
}

/// futex(2) on a 32-bit word in shared memory.
public enum Futex {
    /// Sleeps while `*word == expected`, at most `timeoutMilliseconds`. Spurious and
    /// interrupted wake-ups return too: callers re-check their condition.
    public static func wait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutMilliseconds: Int32) {
        _ = gw_futex_wait(word, expected, max(timeoutMilliseconds, 0))
    }

    public static func wakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        _ = gw_futex_wake_all(word)
    }
}

extension Host {
    /// A new private directory (mode 0700) from a template ending in XXXXXX.
    public static func makeTemporaryDirectory(_ template: String) throws(SystemError) -> String {
        var t = Array(template.utf8CString)
        let r = t.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard r != nil else { throw SystemError(errno: errno, "mkdtemp(\(template))") }
        return String(cString: t)
    }

    public static func removeDirectory(_ path: String) { rmdir(path) }

    /// Gives `path` to `user` (used when the master runs as root and workers do not).
    public static func changeOwner(_ path: String, user: String?, group: String?) throws(SystemError) {
        let (uid, gid) = try Processes.userAndGroupIDs(user, group: group)
        // -1 (max) leaves that id as it is.
        _ = try syscall("chown(\(path))") { chown(path, uid ?? uid_t.max, gid ?? gid_t.max) }
    }

    /// The absolute path of `program` found on `searchPath` (PATH), or nil.
    public static func findExecutable(_ program: String, searchPath: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for dir in searchPath.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public static func environmentValue(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    public static func unsetEnvironment(_ name: String) { unsetenv(name) }

    public static var isRoot: Bool { geteuid() == 0 }
}

extension Processes {
    /// Replaces this process with `path` (argv[0] included in `arguments`). Fds that
    /// are not close-on-exec stay open. Returns only by throwing.
    public static func exec(path: String, arguments: [String], environment: [String]) -> SystemError {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        let e = gw_execve(path, argv, envp)
        return SystemError(errno: e, "execve(\(path))")
    }

    public static func changeDirectory(_ path: String) throws(SystemError) {
        _ = try syscall("chdir(\(path))") { chdir(path) }
    }
}

extension Host {
    /// Names in a directory (not "." or ".."); empty if it cannot be read.
    public static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes `/tmp/PREFIX-<pid>-*` directories (and the files in them) whose process
    /// no longer exists: what a master killed with SIGKILL could not clean up.
    public static func removeStaleDirectories(prefix: String) {
        for name in directoryEntries("/tmp") where name.hasPrefix(prefix + "-") {
            let rest = name.dropFirst(prefix.count + 1)
            guard let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0,
                  Glibc.kill(pid, 0) == -1 && errno == ESRCH else { continue }
            let dir = "/tmp/" + name
            for file in directoryEntries(dir) { unlink(dir + "/" + file) }
            rmdir(dir)
        }
    }
}
