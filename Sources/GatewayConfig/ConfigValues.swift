/// Parsers for the value syntaxes gateway.toml accepts, shared by the file and the CLI.
public enum ConfigValues {
    public struct ValueError: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// `host:port`, `[v6]:port` or `unix:/path`. Relative unix paths are resolved by the caller.
    public static func parseBind(_ s: String) -> Result<BindAddress, ConfigValues.ValueError> {
        if s.hasPrefix("unix:") {
            let path = String(s.dropFirst(5))
            return path.isEmpty ? .failure(ValueError("empty unix socket path")) : .success(.unix(path: path))
        }
        switch hostPort(s) {
        case .success(let (host, port, v6)): return .success(v6 ? .tcp6(host: host, port: port) : .tcp(host: host, port: port))
        case .failure(let e): return .failure(e)
        }
    }

    public static func parseConnect(_ s: String) -> Result<ConnectAddress, ConfigValues.ValueError> {
        if s.hasPrefix("unix:") {
            let path = String(s.dropFirst(5))
            return path.isEmpty ? .failure(ValueError("empty unix socket path")) : .success(.unix(path: path))
        }
        return hostPort(s).map { .tcp(host: $0.0, port: $0.1) }
    }

    static func hostPort(_ s: String) -> Result<(String, Int, Bool), ConfigValues.ValueError> {
        let expected = "expected host:port, [v6]:port or unix:/path, got \"\(s)\""
        var host: Substring, portText: Substring, v6 = false
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return .failure(ValueError(expected)) }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
            v6 = true
            guard host.contains(":") else { return .failure(ValueError("\"\(host)\" in brackets is not an IPv6 address")) }
        } else {
            guard let colon = s.lastIndex(of: ":") else { return .failure(ValueError(expected)) }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            guard !host.contains(":") else { return .failure(ValueError("an IPv6 address needs brackets: [\(host)]:\(portText)")) }
        }
        guard !host.isEmpty else { return .failure(ValueError(expected)) }
        guard host.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._:%".unicodeScalars.contains($0) }) else {
            return .failure(ValueError("invalid host \"\(host)\""))
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            return .failure(ValueError("port must be 1-65535, got \"\(portText)\""))
        }
        return .success((String(host), port, v6))
    }

    /// Seconds: a number, or a string with a unit: "500ms", "30s", "5m", "1h".
    public static func parseDuration(_ s: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count).trimmingSpaces
            if let v = Double(number), v >= 0, v.isFinite { return v * scale }
        }
        if let v = Double(s), v >= 0, v.isFinite { return v }
        return nil
    }

    /// Bytes: an integer, or a string with a binary unit: "64K", "100M", "1G" (also "KiB", "MB").
    public static func parseSize(_ s: String) -> UInt64? {
        let t = s.trimmingSpaces.uppercased()
        let units: [(String, UInt64)] = [("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20),
                                         ("GB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = UInt64(t.dropLast(suffix.count).trimmingSpaces) else { return nil }
            let (r, o) = v.multipliedReportingOverflow(by: scale)
            return o ? nil : r
        }
        return UInt64(t)
    }

    /// File modes as written by people: "0660", "660" or "0o660" (octal), or an integer.
    public static func parseMode(_ s: String) -> Int? {
        var t = Substring(s)
        if t.hasPrefix("0o") { t = t.dropFirst(2) }
        guard let v = Int(t, radix: 8), (0...0o777).contains(v) else { return nil }
        return v
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
