import HTTPWire

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
    public static func parse(_ s: Substring) -> [UInt8]? { IPAddress.parse(s) }
}
