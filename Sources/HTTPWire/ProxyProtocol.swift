/// The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts
/// before the client's bytes to say whom the connection is from. Sans-IO: bytes in,
/// the source address and the header's length out.
public enum ProxyProtocol {
    public struct Source: Sendable, Equatable {
        public let address: String
        public let port: Int
    }

    public enum Step: Sendable, Equatable {
        case needMore
        /// The header is `consumed` bytes long; `source` is nil for LOCAL (health checks)
        /// and UNKNOWN connections, which keep the socket's own peer.
        case header(source: Source?, consumed: Int)
    }

    static let v1Prefix = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The longest v1 line, CRLF included (the specification's figure).
    static let v1MaxLength = 107

    public static func parse(_ bytes: ArraySlice<UInt8>) throws(HTTPParseError) -> Step {
        let b = Array(bytes)
        let n = min(b.count, 12)
        if b.prefix(n).elementsEqual(v2Signature.prefix(n)) {
            return b.count < 12 ? .needMore : try parseV2(b)
        }
        if b.prefix(6).elementsEqual(v1Prefix.prefix(min(b.count, 6))) {
            return b.count < 6 ? .needMore : try parseV1(b)
        }
        throw bad("the connection does not start with a PROXY protocol header")
    }

    static func bad(_ why: String) -> HTTPParseError { HTTPParseError(400, why) }

    static func parseV1(_ b: [UInt8]) throws(HTTPParseError) -> Step {
        guard let lf = b.prefix(v1MaxLength).firstIndex(of: 0x0A) else {
            if b.count >= v1MaxLength { throw bad("PROXY v1 line longer than \(v1MaxLength) bytes") }
            return .needMore
        }
        guard lf > 0, b[lf - 1] == 0x0D else { throw bad("PROXY v1 line without CRLF") }
        let words = String(decoding: b[0..<(lf - 1)], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard words.count >= 2 else { throw bad("PROXY v1 line too short") }
        if words[1] == "UNKNOWN" { return .header(source: nil, consumed: lf + 1) }
        guard words.count == 6, words[1] == "TCP4" || words[1] == "TCP6" else { throw bad("PROXY v1: expected TCP4, TCP6 or UNKNOWN") }
        let v4 = words[1] == "TCP4"
        for a in [words[2], words[3]] {
            guard v4 ? IPAddress.isIPv4(a) : IPAddress.isIPv6(a) else { throw bad("PROXY v1: bad address \(a)") }
        }
        func isPort(_ w: Substring) -> Bool {
            !w.isEmpty && w.count <= 5 && w.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && Int(w)! <= 65535
        }
        guard isPort(words[4]), isPort(words[5]), let port = Int(words[4]) else {
            throw bad("PROXY v1: bad port")
        }
        return .header(source: Source(address: String(words[2]), port: port), consumed: lf + 1)
    }

    static func parseV2(_ b: [UInt8]) throws(HTTPParseError) -> Step {
        guard b.count >= 16 else { return .needMore }
        let version = b[12] >> 4, command = b[12] & 0x0F
        guard version == 2, command <= 1 else { throw bad("PROXY v2: bad version or command") }
        let length = Int(b[14]) << 8 | Int(b[15])
        guard b.count >= 16 + length else { return .needMore }
        let total = 16 + length
        if command == 0 { return .header(source: nil, consumed: total) }  // LOCAL
        let body = b[16..<total]
        func port(_ at: Int) -> Int { Int(body[body.startIndex + at]) << 8 | Int(body[body.startIndex + at + 1]) }
        switch b[13] {
        case 0x11, 0x12:  // IPv4 over TCP or UDP
            guard length >= 12 else { throw bad("PROXY v2: short IPv4 addresses") }
            let a = body.prefix(4).map(String.init).joined(separator: ".")
            return .header(source: Source(address: a, port: port(8)), consumed: total)
        case 0x21, 0x22:  // IPv6
            guard length >= 36 else { throw bad("PROXY v2: short IPv6 addresses") }
            let bytes = Array(body.prefix(16))
            let groups = stride(from: 0, to: 16, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }
            return .header(source: Source(address: groups.joined(separator: ":"), port: port(32)), consumed: total)
        default:  // unix sockets, unspecified: keep the socket's peer
            return .header(source: nil, consumed: total)
        }
    }
}
