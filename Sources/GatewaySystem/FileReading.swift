import Glibc
import CGatewayShims
import Synchronization

/// Cleared when the kernel (or a seccomp filter) refuses openat2: then every path is walked.
private let openat2Works = Atomic<Bool>(true)

/// What fstat says about an open file, for static responses.
public struct OpenFileStatus: Sendable, Equatable {
    public let kind: FileSystem.Kind
    public let size: UInt64
    /// Seconds since the epoch of the last modification.
    public let modified: Int64
}

extension FileDescriptor {
    /// Opens a file read-only, close-on-exec, without following a last-component link
    /// when `noFollow` is set (the caller checked links itself). Nil when it does not
    /// exist; other errors (permissions) throw.
    public static func openForReading(_ path: String, noFollow: Bool = false) throws(SystemError) -> FileDescriptor? {
        let flags = O_RDONLY | gw_O_CLOEXEC | gw_O_NONBLOCK | (noFollow ? O_NOFOLLOW : 0)
        do {
            return FileDescriptor(try syscall("open") { open(path, flags) })
        } catch where error.errno == ENOENT || error.errno == ENOTDIR {
            return nil
        }
    }

    /// What `openWithoutLinks` found.
    public enum DirectOpen {
        case opened(FileDescriptor)
        /// No such file (ENOENT, ENOTDIR).
        case missing
        /// A link in the path, a permission error, or no openat2 here: the caller walks the path itself.
        case walk
    }

    /// Opens `path` in one system call if no component of it is a symbolic link
    /// (openat2 with RESOLVE_NO_SYMLINKS); `followLinks` opens it as open(2) does.
    public static func openWithoutLinks(_ path: String, followLinks: Bool) -> DirectOpen {
        if !followLinks && !openat2Works.load(ordering: .relaxed) { return .walk }
        let fd = followLinks ? open(path, O_RDONLY | gw_O_CLOEXEC | gw_O_NONBLOCK | O_NOCTTY) : gw_open_no_symlinks(path)
        if fd >= 0 { return .opened(FileDescriptor(fd)) }
        let e = errno
        if e == ENOENT || e == ENOTDIR { return .missing }
        // No openat2 here (an old kernel), or a seccomp filter that refuses it with EPERM.
        if !followLinks && (e == ENOSYS || e == EPERM) { openat2Works.store(false, ordering: .relaxed) }
        return .walk
    }

    /// fstat of an open fd: checked on the fd itself, so the file served is the one checked.
    public func status() throws(SystemError) -> OpenFileStatus {
        var st = stat()
        _ = try syscall("fstat") { fstat(rawValue, &st) }
        let kind: FileSystem.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        return OpenFileStatus(kind: kind, size: UInt64(st.st_size), modified: Int64(st.st_mtim.tv_sec))
    }
}
