import Glibc

/// Facts about the machine and process that the configuration and CLI need.
public enum Host {
    /// Online CPUs (for the default worker count, 2 x cores + 1).
    public static func cpuCount() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(cString: buf)
    }

    /// The whole file, for configuration files (small; read once).
    public static func readFile(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = FileDescriptor(try syscall("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) })
        defer { try? fd.close() }
        return try fd.readAll()
    }

    /// Seconds since the Unix epoch (for the Date header, formatted once a second).
    public static func epochSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    /// Microseconds since the Unix epoch (X-Request-Start).
    public static func epochMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// A monotonic clock in seconds, for timeouts and request durations.
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
