import Glibc

/// systemd socket activation (sd_listen_fds(3)): the listening sockets systemd opened
/// for us arrive as fds 3, 4, ... with LISTEN_FDS (their count) and LISTEN_PID (our pid).
public enum SystemdSockets {
    /// The sockets systemd passed, each with the address it listens on, written as
    /// `bind` writes it ("127.0.0.1:8000", "[::1]:8000", "unix:/run/gatewayd.sock").
    /// The variables are removed, so no child takes the fds for its own.
    public static func take() -> [(address: String, fd: FileDescriptor)] {
        defer {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pid = getenv("LISTEN_PID").flatMap({ Int32(String(cString: $0)) }), pid == getpid(),
              let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count > 0 else { return [] }
        var out: [(String, FileDescriptor)] = []
        for raw in 3..<(3 + Int32(count)) {
            let fd = FileDescriptor(raw)
            try? fd.setInheritable(false)
            out.append((boundAddress(fd), fd))
        }
        return out
    }

    /// The address a listening socket is bound to, in `bind` syntax ("" if unknown).
    public static func boundAddress(_ fd: FileDescriptor) -> String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &len) } }
        guard ok == 0 else { return "" }
        if Int32(storage.ss_family) == AF_UNIX {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                    withUnsafeBytes(of: un.pointee.sun_path) { "unix:" + String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                }
            }
        }
        let (host, port) = Socket.localAddress(fd)
        guard !host.isEmpty else { return "" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
