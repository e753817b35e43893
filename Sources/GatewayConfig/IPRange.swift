/// An address or network from `forwarded_allow_ips`: "10.0.0.1", "10.0.0.0/8", "::1",
/// "fd00::/8", or "*" (everyone). Addresses are kept as 16 bytes (IPv4 as ::ffff:a.b.c.d),
/// so one comparison serves both families.
public struct IPRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefixLength: Int
    public let description: String

    public static let everyone = IPRange(network: Array(repeating: 0, count: 16), prefixLength: 0, description: "*")

    init(network: [UInt8], prefixLength: Int, description: String) {
        self.network = network
        self.prefixLength = prefixLength
        self.description = description
    }

    public init?(_ text: String) {
        if text == "*" {
            self = .everyone
            return
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPRange.parse(parts[0]) else { return nil }
        let isV4 = !parts[0].contains(":")
        var length = 128
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= (isV4 ? 32 : 128) else { return nil }
            length = isV4 ? n + 96 : n
        }
        network = address
        prefixLength = length
        description = text
    }

    /// Whether `address` (as getpeername or a header gives it) lies in this range.
    public func contains(_ address: Substring) -> Bool {
        guard prefixLength > 0 else { return true }
        guard let a = IPRange.parse(address) else { return false }
        var bits = prefixLength
        for i in 0..<16 where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
            if a[i] & mask != network[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// 16 bytes for an IPv4 or IPv6 address in text; nil for anything else.
    public static func parse(_ s: Substring) -> [UInt8]? {
        if !s.contains(":") {
            guard let v4 = parseIPv4(s) else { return nil }
            return Array(repeating: 0, count: 10) + [0xff, 0xff] + v4
        }
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
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        let tailGroups = halves.count == 2 ? groups(halves[1]) : []
        guard let tailGroups else { return nil }
        let known = head.count + tailGroups.count + tail.count
        if halves.count == 1 { return known == 16 ? head + tail : nil }
        guard known < 16 else { return nil }
        return head + Array(repeating: 0, count: 16 - known) + tailGroups + tail
    }

    static func parseIPv4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }
}
