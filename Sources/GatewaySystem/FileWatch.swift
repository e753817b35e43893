#if canImport(Glibc)
import Glibc
#endif

/// Tells whether anything changed in a set of directories (inotify), without waiting:
/// what lets a worker keep static files open between requests and still serve a file
/// changed, replaced or removed a moment ago as it now is. The kernel queues an event
/// when the change is made, so one that came before a request's bytes is always seen by
/// `changed()` once those bytes are read.
public final class FileWatch: Sendable {
    let fd: FileDescriptor

    /// What counts as a change in a watched directory: its entries created, removed or
    /// renamed, a file in it written or its attributes (mode, owner, times) changed, or
    /// the directory itself removed or moved. Reads (IN_ACCESS, IN_OPEN) do not count.
    static let mask = UInt32(IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF) | UInt32(IN_ONLYDIR)

    /// Nil when the kernel refuses another inotify instance (fs.inotify.max_user_instances).
    public init?() {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        self.fd = FileDescriptor(fd)
    }

    deinit { try? fd.close() }

    /// Starts watching `directory` (watching one twice is harmless). False when it cannot
    /// be watched (gone, not readable, or fs.inotify.max_user_watches reached).
    public func watch(_ directory: String) -> Bool {
        inotify_add_watch(fd.rawValue, directory, Self.mask) >= 0
    }

    /// True when some change was queued since the last call (the queue is emptied; an
    /// overflowed queue counts as a change). One read that returns at once when nothing came.
    public func changed() -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { buffer in
            var any = false
            while true {
                let n = read(fd.rawValue, buffer.baseAddress, buffer.count)
                if n > 0 {
                    any = true
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return any
                }
            }
        }
    }
}
