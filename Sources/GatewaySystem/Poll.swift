import Glibc
import CGatewayShims

/// poll(2) over a few descriptors, for blocking workers and the master's loop.
public enum Poll {
    public static let readable = Int16(POLLIN)
    public static let writable = Int16(POLLOUT)
    /// POLLRDHUP: the peer shut down its side (Glibc's module leaves it out).
    public static let peerClosed = Int16(0x2000)
    /// POLLERR or POLLHUP: the connection failed or is closed both ways.
    public static let failed = Int16(POLLERR | POLLHUP)

    /// Waits up to `timeoutMilliseconds` (-1 forever); returns each fd's revents (0: not ready).
    /// An interrupted wait returns all zeros.
    public static func wait(_ fds: [(FileDescriptor, Int16)], timeoutMilliseconds: Int32) throws(SystemError) -> [Int16] {
        var pfds = fds.map { pollfd(fd: $0.0.rawValue, events: $0.1, revents: 0) }
        let n = Glibc.poll(&pfds, nfds_t(pfds.count), timeoutMilliseconds)
        if n == -1 {
            if errno == EINTR { return Array(repeating: 0, count: fds.count) }
            throw SystemError(errno: errno, "poll")
        }
        return pfds.map(\.revents)
    }
}

extension FileDescriptor {
    /// Waits until readable (or hung up); false on timeout.
    public func waitReadable(timeoutMilliseconds: Int32) throws(SystemError) -> Bool {
        try Poll.wait([(self, Poll.readable)], timeoutMilliseconds: timeoutMilliseconds)[0] != 0
    }

    public func waitWritable(timeoutMilliseconds: Int32) throws(SystemError) -> Bool {
        try Poll.wait([(self, Poll.writable)], timeoutMilliseconds: timeoutMilliseconds)[0] != 0
    }

    /// Marks the heartbeat file as fresh (its mtime is now).
    public func touch() { _ = gw_touch(rawValue) }

    /// Seconds since the file's last modification, by the realtime clock.
    public func secondsSinceModified() -> Double {
        var st = stat()
        guard fstat(rawValue, &st) == 0 else { return 0 }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec - st.st_mtim.tv_sec) + Double(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9
    }

    /// Duplicates the fd to a number >= `minimum`, close-on-exec.
    public func duplicate(atLeast minimum: Int32 = 0) throws(SystemError) -> FileDescriptor {
        FileDescriptor(try syscall("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, minimum) })
    }

    /// Reads the whole file from offset 0 (for the configuration handed to a worker).
    public func readAll() throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset = 0
        while true {
            let n = try syscall("pread") { chunk.withUnsafeMutableBytes { Glibc.pread(rawValue, $0.baseAddress, $0.count, off_t(offset)) } }
            if n == 0 { return out }
            out += chunk[0..<n]
            offset += n
        }
    }
}

extension Host {
    /// An unlinked temporary file, close-on-exec: the worker heartbeat and the
    /// configuration handed to workers live in these.
    public static func anonymousFile(contents: [UInt8] = []) throws(SystemError) -> FileDescriptor {
        var template = Array("/tmp/gatewayd-XXXXXX".utf8CString)
        let fd = FileDescriptor(try syscall("mkstemp") { template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) } })
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        try fd.setInheritable(false)
        if !contents.isEmpty { try fd.writeAll(contents) }
        return fd
    }

    public static func writeFile(_ path: String, _ contents: String) throws(SystemError) {
        let fd = FileDescriptor(try syscall("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) })
        defer { try? fd.close() }
        try fd.writeAll(Array(contents.utf8))
    }

    public static func removeFile(_ path: String) { unlink(path) }

    /// rename(2): `from` takes the name `to`, atomically (a pidfile to its .oldbin).
    public static func renameFile(_ from: String, _ to: String) -> Bool { rename(from, to) == 0 }

    public static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func sleep(seconds: Double) {
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) == -1 && errno == EINTR { ts = rest }
    }

    /// "2026-11-22 03:40:00" in UTC, for log lines.
    public static func utcTimestamp() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p2(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tmv.tm_year + 1900)-\(p2(tmv.tm_mon + 1))-\(p2(tmv.tm_mday)) \(p2(tmv.tm_hour)):\(p2(tmv.tm_min)):\(p2(tmv.tm_sec))"
    }
}

extension Host {
    /// Opens (creating) a file for appending, close-on-exec: log files.
    public static func openForAppend(_ path: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(try syscall("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) })
    }
}

extension Host {
    /// "22/Nov/2026:03:40:00 +0000", the access log's time.
    public static func accessLogTimestamp() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p2(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(p2(tmv.tm_mday))/\(months[Int(tmv.tm_mon)])/\(tmv.tm_year + 1900):\(p2(tmv.tm_hour)):\(p2(tmv.tm_min)):\(p2(tmv.tm_sec)) +0000"
    }
}
