/// Textual IP addresses, checked strictly: what a proxy header (X-Forwarded-For,
/// Forwarded, PROXY) may name as the client. "cafe", "1.2.3.4.5" and "999.1.1.1" are
/// not addresses; the caller ignores them rather than pass them on as REMOTE_ADDR.
public enum IPAddress {
    /// 16 bytes for an IPv4 (as ::ffff:a.b.c.d) or IPv6 address in text; nil otherwise.
    public static func parse(_ s: Substring) -> [UInt8]? {
        if !s.contains(":") {
            guard let v4 = parseIPv4(s) else { return nil }
            return Array(repeating: 0, count: 10) + [0xff, 0xff] + v4
        }
        return parseIPv6(s)
    }

    public static func isIPv4(_ s: Substring) -> Bool { parseIPv4(s) != nil }
    public static func isIPv6(_ s: Substring) -> Bool { s.contains(":") && parseIPv6(s) != nil }

    /// Dotted decimal, four parts of 0-255 with no sign, no spaces and at most 3 digits.
    public static func parseIPv4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    /// RFC 4291 §2.2 text forms: eight groups, "::" once, an IPv4 tail. No zone ("%eth0").
    static func parseIPv6(_ s: Substring) -> [UInt8]? {
        var text = s
        var tail: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseIPv4(text[text.index(after: lastColon)...]) else { return nil }
            tail = v4
            text = text[...lastColon]
            if text.hasSuffix(":") && !text.hasSuffix("::") { text = text.dropLast() }
        }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ h: String) -> [UInt8]? {
            if h.isEmpty { return [] }
            var out: [UInt8] = []
            for g in h.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, g.utf8.allSatisfy(isHex), let v = UInt16(g, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        guard let tailGroups = halves.count == 2 ? groups(halves[1]) : [] else { return nil }
        let known = head.count + tailGroups.count + tail.count
        if halves.count == 1 { return known == 16 ? head + tail : nil }
        guard known < 16 else { return nil }
        return head + Array(repeating: 0, count: 16 - known) + tailGroups + tail
    }

    static func isHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }
}
