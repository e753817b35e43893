import GatewaySystem
import Synchronization

/// A static file opened for responses. Its descriptor closes when the last holder lets
/// go: the open-file cache, or a response still being sent from it.
final class OpenFile: Sendable {
    let fd: FileDescriptor

    init(_ fd: FileDescriptor) { self.fd = fd }

    deinit { try? fd.close() }
}

/// The files of one document tree kept open between requests (nginx's open_file_cache,
/// on by default here): a hit costs no open, fstat or close, and no path resolution in
/// the kernel, which together were a third of the time of a small static response.
///
/// What keeps it right: every directory from the root down to a cached file's is watched
/// (FileWatch, inotify), and any change in any of them empties the cache before the next
/// lookup, so a file written, replaced by a rename, removed or made unreadable is served
/// as it now is. A file is cached only once the directories on its path were watched
/// before it was opened (the first request of a directory opens, watches, and caches
/// nothing), so no change can fall between the open and the watch. Changes inotify does
/// not see (a symbolic link above the root swapped, a network filesystem) show within
/// `valid` seconds, after which an entry is opened again. Thread-safe (the thread
/// worker's pool shares it): all state is behind the mutex.
final class OpenFileCache: Sendable {
    struct Entry {
        let file: StaticFile
        let expires: Double
    }

    struct State {
        var entries: [Substring: Entry] = [:]
        var watch: FileWatch? = nil
        /// No inotify instance could be had: nothing is cached.
        var unavailable = false
        /// Directories watched since the cache was last emptied.
        var watched: Set<String> = []

        /// Empties the cache if anything changed below the root since the last look (the
        /// watches of removed directories are gone: the next offers watch again).
        mutating func dropIfChanged() {
            guard watch?.changed() == true else { return }
            entries = [:]
            watched = []
        }
    }

    let root: String
    let capacity: Int
    let valid: Double
    private let state = Mutex(State())

    init(root: String, capacity: Int, valid: Double) {
        self.root = root
        self.capacity = capacity
        self.valid = valid
    }

    /// The cached file for `path` ("/a/b.html", below the root), if it is still good.
    func find(_ path: Substring, now: Double) -> StaticFile? {
        state.withLock { s in
            guard !s.entries.isEmpty else { return nil }
            s.dropIfChanged()
            guard let e = s.entries[path] else { return nil }
            guard e.expires > now else {
                s.entries[path] = nil
                return nil
            }
            return e.file
        }
    }

    /// Offers a file just opened for `path`: kept if its directories were already watched
    /// (otherwise they are watched now, and the next request's open is the one kept).
    func offer(_ path: Substring, _ file: StaticFile, now: Double) {
        let directories = Self.directories(of: path, root: root)
        state.withLock { s in
            if s.watch == nil {
                guard !s.unavailable, let w = FileWatch() else {
                    s.unavailable = true
                    return
                }
                s.watch = w
            }
            s.dropIfChanged()
            var watchedBefore = true
            for d in directories where !s.watched.contains(d) {
                watchedBefore = false
                guard s.watch?.watch(d) == true else { return }
                s.watched.insert(d)
            }
            guard watchedBefore else { return }
            if s.entries.count >= capacity { s.entries = s.entries.filter { $0.value.expires > now } }
            guard s.entries.count < capacity else { return }  // the hot set stays; room comes as entries expire
            s.entries[Substring(String(path))] = Entry(file: file, expires: now + valid)
        }
    }

    /// The root, and each directory below it on the way to `path`'s last segment
    /// ("/a/b/c.html": root, root/a, root/a/b; "/a/": root, root/a).
    static func directories(of path: Substring, root: String) -> [String] {
        var out = [root]
        guard path.utf8.first == UInt8(ascii: "/") else { return out }
        var at = path.utf8.startIndex
        while let slash = path.utf8[path.utf8.index(after: at)...].firstIndex(of: UInt8(ascii: "/")) {
            out.append(root + path[..<slash])
            at = slash
            if path.utf8.index(after: at) == path.utf8.endIndex { break }
        }
        return out
    }
}
