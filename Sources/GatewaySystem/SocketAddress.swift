import Glibc
import CGatewayShims

extension Socket {
    /// Connects to a TCP address with a timeout (non-blocking connect + poll); the
    /// returned socket is blocking again.
    /// `blocking: false` leaves the connected socket non-blocking (its user tries each
    /// call first and polls only when it would block).
    public static func connectTCP(host: String, port: Int, timeoutMilliseconds: Int32, blocking: Bool = true) throws(SystemError) -> FileDescriptor {
        var storage = sockaddr_storage()
        let length = try fillAddress(&storage, host: host, port: port)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue), 1) })
        do {
            let r = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.rawValue, $0, length) } }
            try finishConnect(fd, result: r, timeoutMilliseconds: timeoutMilliseconds, blocking: blocking, what: "connect(\(host):\(port))")
            var one: Int32 = 1
            setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    public static func connectUnix(path: String, timeoutMilliseconds: Int32, blocking: Bool = true) throws(SystemError) -> FileDescriptor {
        var addr = try unixAddress(path)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 1) })
        do {
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            try finishConnect(fd, result: r, timeoutMilliseconds: timeoutMilliseconds, blocking: blocking, what: "connect(unix:\(path))")
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// Starts a connect and returns at once; the socket stays non-blocking (event loops).
    /// `inProgress`: wait until it is writable, then read `pendingError`. A unix socket
    /// whose backlog is full fails with EAGAIN: try again a little later.
    public static func startConnectUnix(path: String) throws(SystemError) -> (fd: FileDescriptor, inProgress: Bool) {
        var addr = try unixAddress(path)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 1) })
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        return try startedConnect(fd, result: r, what: "connect(unix:\(path))")
    }

    public static func startConnectTCP(host: String, port: Int) throws(SystemError) -> (fd: FileDescriptor, inProgress: Bool) {
        var storage = sockaddr_storage()
        let length = try fillAddress(&storage, host: host, port: port)
        let fd = FileDescriptor(try syscall("socket") { gw_socket(Int32(storage.ss_family), Int32(SOCK_STREAM.rawValue), 1) })
        setNoDelay(fd)
        let r = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.rawValue, $0, length) } }
        return try startedConnect(fd, result: r, what: "connect(\(host):\(port))")
    }

    private static func startedConnect(_ fd: FileDescriptor, result: Int32, what: String) throws(SystemError) -> (fd: FileDescriptor, inProgress: Bool) {
        if result == 0 { return (fd, false) }
        let e = errno
        if e == EINPROGRESS || e == EINTR { return (fd, true) }
        try? fd.close()
        throw SystemError(errno: e, what)
    }

    /// The outcome of a non-blocking connect once the socket is writable (0: connected).
    public static func pendingError(_ fd: FileDescriptor) -> Int32 {
        var soError: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &soError, &len) != 0 { return errno }
        return soError
    }

    private static func finishConnect(_ fd: FileDescriptor, result: Int32, timeoutMilliseconds: Int32, blocking: Bool, what: String) throws(SystemError) {
        if result == -1 {
            let e = errno
            guard e == EINPROGRESS || e == EINTR else { throw SystemError(errno: e, what) }
            guard try fd.waitWritable(timeoutMilliseconds: timeoutMilliseconds) else { throw SystemError(errno: ETIMEDOUT, what) }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &soError, &len)
            guard soError == 0 else { throw SystemError(errno: soError, what) }
        }
        if blocking { try fd.setNonBlocking(false) }
    }

    /// The peer of a connected socket as (address, port); ("", 0) for unix sockets.
    public static func peerAddress(_ fd: FileDescriptor) -> (String, Int) {
        address(fd) { getpeername($0, $1, $2) }
    }

    /// The local side of a connected socket (SERVER_ADDR, SERVER_PORT).
    public static func localAddress(_ fd: FileDescriptor) -> (String, Int) {
        address(fd) { getsockname($0, $1, $2) }
    }

    private static func address(_ fd: FileDescriptor, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> (String, Int) {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd.rawValue, $0, &len) } }
        guard ok == 0 else { return ("", 0) }
        let family = Int32(storage.ss_family)
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafePointer(to: &storage) { p -> (String, Int) in
            if family == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                    return (String(cString: text), Int(UInt16(bigEndian: a.pointee.sin_port)))
                }
            }
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                    return (String(cString: text), Int(UInt16(bigEndian: a.pointee.sin6_port)))
                }
            }
            return ("", 0)
        }
    }

    /// No more writes from this side (the peer sees EOF).
    public static func shutdownWrite(_ fd: FileDescriptor) { _ = shutdown(fd.rawValue, Int32(SHUT_WR)) }

    public static func setNoDelay(_ fd: FileDescriptor) {
        var one: Int32 = 1
        setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
}
