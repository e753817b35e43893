import Glibc

/// What the kernel shows of a process, from /proc, for the slow-request log: its state,
/// where it sleeps in the kernel (wchan), its kernel stack where readable (root), and its
/// open sockets. Needs no ptrace (php-fpm's slowlog does, and fails in containers that
/// forbid it); all of it is one read per file.
public struct ProcessView: Sendable, Equatable {
    public let pid: Int32
    /// "S (sleeping)", "R (running)", "D (disk sleep)"...
    public var state: String = "?"
    /// The kernel function it waits in ("hrtimer_nanosleep", "unix_stream_read_generic"),
    /// or "0" when running.
    public var wchan: String = "?"
    /// Kernel stack frames, innermost first; empty when /proc/PID/stack is not readable.
    public var stack: [String] = []
    /// One line per socket: "fd 0: unix /run/app.sock (listening)", "fd 4: tcp
    /// 127.0.0.1:9000 <- 127.0.0.1:40122 ESTABLISHED".
    public var sockets: [String] = []

    /// The view of `pid`; nil when the process is gone.
    public static func read(_ pid: Int32) -> ProcessView? {
        guard let status = text("/proc/\(pid)/status") else { return nil }
        var v = ProcessView(pid: pid)
        if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("State:") }) {
            v.state = line.dropFirst("State:".count).trimmingASCIISpaces()
        }
        v.wchan = text("/proc/\(pid)/wchan").map { $0.isEmpty ? "0" : $0 } ?? "?"
        v.stack = (text("/proc/\(pid)/stack") ?? "").split(separator: "\n").map { line in
            // "[<0>] hrtimer_nanosleep+0x9b/0x140": the address is zeroed for non-root anyway.
            let frame = line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? String(line)
            return frame
        }
        v.sockets = sockets(pid)
        return v
    }

    /// One line for the error log.
    public var summary: String {
        var s = "pid \(pid) state \(state) wchan \(wchan)"
        s += stack.isEmpty ? "; kernel stack unreadable (needs root)" : "; kernel stack: " + stack.joined(separator: " < ")
        s += sockets.isEmpty ? "; no sockets" : "; sockets: " + sockets.joined(separator: ", ")
        return s
    }

    static func text(_ path: String) -> String? {
        guard let bytes = try? Host.readFile(path) else { return nil }
        var s = String(decoding: bytes, as: UTF8.self)
        while s.last == "\n" { s.removeLast() }
        return s
    }

    /// The process's sockets by fd, described from its network namespace's tables.
    static func sockets(_ pid: Int32) -> [String] {
        var inodes: [(fd: Int, inode: String)] = []
        for name in Host.directoryEntries("/proc/\(pid)/fd") {
            guard let fd = Int(name) else { continue }
            var buf = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/\(pid)/fd/\(name)", &buf, buf.count - 1)
            guard n > 0 else { continue }
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:["), target.hasSuffix("]") else { continue }
            inodes.append((fd, String(target.dropFirst(8).dropLast())))
        }
        guard !inodes.isEmpty else { return [] }
        var known: [String: String] = [:]
        for line in (text("/proc/\(pid)/net/unix") ?? "").split(separator: "\n").dropFirst() {
            // Num RefCount Protocol Flags Type St Inode [Path]
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 7 else { continue }
            let listening = f[3] == "00010000" ? " (listening)" : ""
            known[String(f[6])] = "unix " + (f.count > 7 ? String(f[7]) : "(unnamed)") + listening
        }
        for table in ["tcp", "tcp6"] {
            for line in (text("/proc/\(pid)/net/\(table)") ?? "").split(separator: "\n").dropFirst() {
                // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 10 else { continue }
                known[String(f[9])] = "\(table) \(address(f[1])) <- \(address(f[2])) \(tcpState(f[3]))"
            }
        }
        return inodes.map { "fd \($0.fd): " + (known[$0.inode] ?? "socket \($0.inode)") }
    }

    /// "0100007F:1F90" -> "127.0.0.1:8080"; an IPv6 address stays in hex.
    static func address(_ field: Substring) -> String {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return String(field) }
        guard parts[0].count == 8, let ip = UInt32(parts[0], radix: 16) else { return "[\(parts[0])]:\(port)" }
        return "\(ip & 0xFF).\(ip >> 8 & 0xFF).\(ip >> 16 & 0xFF).\(ip >> 24):\(port)"
    }

    static func tcpState(_ hex: Substring) -> String {
        let names = ["01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
                     "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"]
        return names[String(hex)] ?? String(hex)
    }
}

extension Substring {
    func trimmingASCIISpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
