import CGIProtocol
import GatewayConfig
import GatewaySystem

/// A directory served to clients (a static route's, or a PHP app's root), and the walk
/// that maps a request path onto it. The walk refuses hidden files and directories
/// (".git", ".env") and, unless the route allows them, symbolic links that lead out of
/// the directory; ".." never gets here (the path is normalised first, and one above the
/// root is a 400).
struct DocumentTree: Sendable {
    enum Node: Equatable {
        case file(String)
        case directory(String)
        /// Nothing there; also a path that goes on below a regular file ("/a.html/x").
        case missing
        case refused(Int, String)
    }

    let root: String
    /// The root with every link resolved, for the symlink check.
    let canonicalRoot: String
    let allowSymlinks: Bool
    /// Files kept open between requests (nil: each request opens its file).
    let cache: OpenFileCache?

    init(root: String, allowSymlinks: Bool, cache: (capacity: Int, valid: Double)? = nil) {
        self.root = root
        canonicalRoot = FileSystem.realPath(root) ?? root
        self.allowSymlinks = allowSymlinks
        self.cache = cache.flatMap { $0.capacity > 0 && $0.valid > 0 ? OpenFileCache(root: root, capacity: $0.capacity, valid: $0.valid) : nil }
    }

    /// Walks `path` ("/a/b.html", decoded and normalised) below the root, one lstat per segment.
    func walk(_ path: Substring) -> Node {
        var file = root
        var rest = path
        var kind = FileSystem.Kind.directory
        let slash = UInt8(ascii: "/")
        while rest.utf8.first == slash {  // (bytes, not Characters)
            let end = rest.utf8.dropFirst().firstIndex(of: slash) ?? rest.endIndex
            let segment = rest[rest.utf8.index(after: rest.startIndex)..<end]
            rest = rest[end...]
            guard !segment.isEmpty else { break }  // a trailing slash
            guard kind == .directory else { return .missing }
            guard segment.utf8.first != UInt8(ascii: ".") else { return .refused(404, "hidden file or directory \"\(segment)\"") }
            file += "/" + segment
            guard var info = FileSystem.info(file) else { return .missing }
            if info.kind == .symlink {
                if !allowSymlinks {
                    guard let target = FileSystem.realPath(file), target.hasPrefix(canonicalRoot + "/") else {
                        return .refused(403, "\(file) is a symbolic link out of \(root) (allow_symlinks is off)")
                    }
                }
                guard let followed = FileSystem.info(file, followLinks: true) else { return .missing }
                info = followed
            }
            kind = info.kind
            guard kind == .directory || kind == .regular else { return .refused(403, "\(file) is not a regular file") }
        }
        return kind == .directory ? .directory(file) : .file(file)
    }
}

/// A file opened to be sent as a static response.
struct StaticFile: Sendable {
    let file: OpenFile
    let status: OpenFileStatus
    /// Its name, for the Content-Type.
    let name: Substring
    /// A gzip_static route: the `.gz` beside it (sent to clients that accept gzip), and
    /// whether answers say `Vary: Accept-Encoding`.
    var gzipped: (file: OpenFile, status: OpenFileStatus)? = nil
    var varies = false
    /// It is that `.gz`: sent with `Content-Encoding: gzip`.
    var gzipCoded = false
}

/// The outcome of looking a path up for a static response.
enum StaticLookup {
    case file(StaticFile)
    /// A directory named without its trailing slash (the caller redirects to it).
    case directoryWithoutSlash
    case refuse(Int, String)
}

extension DocumentTree {
    /// The file a GET of `path` serves: the file itself, or a directory's first index
    /// file; from the open-file cache when it has it.
    func lookup(_ path: Substring, index: [String]) -> StaticLookup {
        guard let cache else { return lookupUncached(path, index: index) }
        let now = Host.monotonicSeconds()
        if let hit = cache.find(path, now: now) { return .file(hit) }
        let found = lookupUncached(path, index: index)
        if case .file(let f) = found { cache.offer(path, f, now: now) }
        return found
    }

    func lookupUncached(_ path: Substring, index: [String]) -> StaticLookup {
        if let found = openDirectly(path) { return found }
        switch walk(path) {
        case .missing:
            return .refuse(404, "no file for \(path)")
        case .refused(let status, let why):
            return .refuse(status, why)
        case .directory:
            guard path.hasSuffix("/") else { return .directoryWithoutSlash }
            for name in index {
                if case .file(let file) = walk(Substring(path + name)) { return open(file) }
            }
            return .refuse(404, "directory \(path) has no index file (\(index.joined(separator: ", ")))")
        case .file(let file):
            return open(file)
        }
    }

    /// The common case in two system calls (open and fstat) where the walk makes one
    /// lstat per segment, then the same open and fstat: a path with no hidden segment,
    /// no trailing slash and, unless allow_symlinks, no symbolic link anywhere in it
    /// (openat2 refuses one). Nil when the walk must decide: a link (is it inside the
    /// root?), a directory (index files, the slash redirect), a permission error.
    func openDirectly(_ path: Substring) -> StaticLookup? {
        guard path.utf8.first == UInt8(ascii: "/"), path.utf8.last != UInt8(ascii: "/"), !Self.hasHiddenSegment(path) else { return nil }
        let file = root + path
        switch FileDescriptor.openWithoutLinks(file, followLinks: allowSymlinks) {
        case .missing: return .refuse(404, "no file for \(path)")
        case .walk: return nil
        case .opened(let fd):
            guard let status = try? fd.status(), status.kind == .regular else {
                try? fd.close()
                return nil
            }
            return .file(StaticFile(file: OpenFile(fd), status: status, name: Self.lastSegment(file)))
        }
    }

    static func hasHiddenSegment(_ path: Substring) -> Bool {
        var afterSlash = false
        for b in path.utf8 {
            if afterSlash && b == UInt8(ascii: ".") { return true }
            afterSlash = b == UInt8(ascii: "/")
        }
        return false
    }

    static func lastSegment(_ file: String) -> Substring {
        guard let slash = file.utf8.lastIndex(of: UInt8(ascii: "/")) else { return Substring(file) }
        return file[file.utf8.index(after: slash)...]
    }

    /// Opens a file the walk found, and checks on the open fd that it is a regular file.
    func open(_ file: String) -> StaticLookup {
        let fd: FileDescriptor
        do {
            guard let opened = try FileDescriptor.openForReading(file) else { return .refuse(404, "\(file) vanished") }
            fd = opened
        } catch {
            return .refuse(error.errno == EACCES_ ? 403 : 500, "cannot open \(file): \(error)")
        }
        guard let status = try? fd.status(), status.kind == .regular else {
            try? fd.close()
            return .refuse(403, "\(file) is not a regular file")
        }
        return .file(StaticFile(file: OpenFile(fd), status: status, name: Self.lastSegment(file)))
    }
}
