import Glibc
import CGatewayShims

/// Listening and connected sockets. Every socket is created close-on-exec.
public enum Socket {
    /// Stops a listening TCP socket from queueing new connections, keeping those already
    /// queued (a drop-all socket filter; see gw_refuse_new_connections). For a stop: the
    /// filter stays on the socket as long as it exists.
    public static func refuseNewConnections(_ fd: FileDescriptor) {
        _ = gw_refuse_new_connections(fd.rawValue)
    }

    /// A bound, listening TCP socket on an IPv4/IPv6 literal (SO_REUSEADDR set).
    public static func listenTCP(host: String, port: Int, backlog: Int32, reusePort: Bool = false) throws(SystemError) -> FileDescriptor {
        var storage = sockaddr_storage()
        let length = try fillAddress(&storage, host: host, port: port)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue), 0) })
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            if storage.ss_family == sa_family_t(AF_INET6) { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
            _ = try syscall("bind") { withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, length) } } }
            _ = try syscall("listen") { listen(fd.rawValue, backlog) }
        } catch {
            try? fd.close()
            throw error
        }
        return fd
    }

    /// A listening unix socket; a stale socket file at `path` is replaced.
    public static func listenUnix(path: String, backlog: Int32, mode: Int) throws(SystemError) -> FileDescriptor {
        var addr = try unixAddress(path)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0) })
        do {
            var st = stat()
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
            _ = try syscall("bind") { withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } } }
            _ = try syscall("chmod") { chmod(path, mode_t(mode)) }
            _ = try syscall("listen") { listen(fd.rawValue, backlog) }
        } catch {
            try? fd.close()
            throw error
        }
        return fd
    }

    /// Accepts one connection as close-on-exec (and non-blocking if asked); nil when a
    /// non-blocking listener has none waiting.
    public static func accept(_ listener: FileDescriptor, nonBlocking: Bool = false) throws(SystemError) -> FileDescriptor? {
        do {
            let fd = try syscall("accept4") { gw_accept4(listener.rawValue, nil, nil, gw_SOCK_CLOEXEC | (nonBlocking ? gw_SOCK_NONBLOCK : 0)) }
            return FileDescriptor(fd)
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// A blocking TCP connection to an IPv4/IPv6 literal, waiting as long as connect does.
    public static func connectTCP(host: String, port: Int) throws(SystemError) -> FileDescriptor {
        try connectTCP(host: host, port: port, timeoutMilliseconds: -1)
    }

    public static func connectUnix(path: String) throws(SystemError) -> FileDescriptor {
        try connectUnix(path: path, timeoutMilliseconds: -1)
    }

    /// The port a socket is bound to (after binding port 0).
    public static func localPort(_ fd: FileDescriptor) throws(SystemError) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try syscall("getsockname") { withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &len) } } }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { p in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    static func setOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        _ = try syscall("setsockopt") { setsockopt(fd.rawValue, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// The first address a host name resolves to (getaddrinfo), as text: "10.0.0.5",
    /// "fd00::5". An IP address comes back as it is; nil when the name does not resolve.
    /// Blocking: for start-up, never per request.
    public static func resolveHost(_ host: String) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch first.pointee.ai_family {
        case AF_INET:
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil else { return nil }
        case AF_INET6:
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return nil }
        default:
            return nil
        }
        return String(cString: text)
    }

    /// An IP address as plain integers, for the shared slot table: family 4 or 6 and
    /// its 16 bytes as two words (IPv4 in the last 4 bytes).
    public struct PackedAddress: Equatable, Sendable {
        public var family: Int64
        public var high: UInt64
        public var low: UInt64
        public init(family: Int64, high: UInt64, low: UInt64) {
            self.family = family
            self.high = high
            self.low = low
        }
    }

    /// Packs "10.0.0.5" or "fd00::5"; nil for anything else.
    public static func pack(_ text: String) -> PackedAddress? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let family: Int64
        if text.contains(":") {
            guard bytes.withUnsafeMutableBytes({ inet_pton(AF_INET6, text, $0.baseAddress) }) == 1 else { return nil }
            family = 6
        } else {
            guard bytes.withUnsafeMutableBytes({ inet_pton(AF_INET, text, $0.baseAddress! + 12) }) == 1 else { return nil }
            family = 4
        }
        let word = { (from: Int) in bytes[from..<from + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        return PackedAddress(family: family, high: word(0), low: word(8))
    }

    /// The text of a packed address.
    public static func unpack(_ p: PackedAddress) -> String? {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: p.high >> (56 - 8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: p.low >> (56 - 8 * UInt64(i)))
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok: Bool
        switch p.family {
        case 4: ok = bytes.withUnsafeBytes { inet_ntop(AF_INET, $0.baseAddress! + 12, &text, socklen_t(text.count)) } != nil
        case 6: ok = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) } != nil
        default: ok = false
        }
        return ok ? String(cString: text) : nil
    }

    /// Whether a connect address's host must be looked up (a name, not an IP address).
    /// "localhost" is left to the connect, as it always was.
    public static func isHostName(_ host: String) -> Bool {
        !host.contains(":") && host != "localhost" && host.unicodeScalars.contains { $0.properties.isAlphabetic }
    }

    static func fillAddress(_ storage: inout sockaddr_storage, host: String, port: Int) throws(SystemError) -> socklen_t {
        var ok: Int32 = 0
        let length: socklen_t
        if host.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = UInt16(port).bigEndian
            ok = inet_pton(AF_INET6, host, &a.sin6_addr)
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee = a } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(port).bigEndian
            ok = inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &a.sin_addr)
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee = a } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        guard ok == 1 else { throw SystemError(errno: EINVAL, "inet_pton(\(host))") }
        return length
    }

    static func unixAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw SystemError(errno: ENAMETOOLONG, "unix socket path \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }
}
