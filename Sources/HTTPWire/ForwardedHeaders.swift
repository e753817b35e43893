/// What proxies say about the client: `Forwarded` (RFC 7239) or the de facto
/// `X-Forwarded-For` / `X-Forwarded-Proto`. Only parsing; whom to believe is the
/// caller's decision (forwarded_allow_ips).
public enum ForwardedHeaders {
    /// One proxy hop: the address it received the request from, and the scheme it was
    /// received over, when the header said so.
    public struct Hop: Sendable, Equatable {
        public var address: String?
        public var proto: String?
    }

    /// Which header the trusted proxy writes. Only that one is read: a proxy that appends
    /// X-Forwarded-For (nginx, HAProxy) passes a client's own `Forwarded` through
    /// untouched, so believing it would let the client choose its address.
    public enum Kind: String, Sendable, CaseIterable {
        case xForwardedFor = "x-forwarded-for"
        case forwarded
    }

    /// The hops, nearest proxy last, from the one kind of header the proxy writes.
    /// X-Forwarded-Proto's last value goes with the last hop. A hop whose address is not
    /// a valid IPv4 or IPv6 address has `address == nil`.
    public static func hops(_ headers: HTTPHeaders, kind: Kind) -> [Hop] {
        if kind == .forwarded {
            return headers.values("Forwarded").flatMap { $0.split(separator: ",") }.map(parseElement)
        }
        var hops = headers.values("X-Forwarded-For").flatMap { $0.split(separator: ",") }
            .map { Hop(address: nodeAddress($0.trimmingSpaces), proto: nil) }
        if let proto = headers.values("X-Forwarded-Proto").flatMap({ $0.split(separator: ",") }).last {
            if hops.isEmpty { hops.append(Hop(address: nil, proto: nil)) }
            hops[hops.count - 1].proto = proto.trimmingSpaces.lowercased()
        }
        return hops
    }

    /// `for=192.0.2.60;proto=http;by=203.0.113.43` (pairs in any order, values maybe quoted).
    static func parseElement(_ element: Substring) -> Hop {
        var hop = Hop(address: nil, proto: nil)
        for pair in element.split(separator: ";") {
            guard let eq = pair.firstIndex(of: "=") else { continue }
            let key = pair[..<eq].trimmingSpaces.lowercased()
            var value = Substring(pair[pair.index(after: eq)...].trimmingSpaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            switch key {
            case "for": hop.address = nodeAddress(String(value))
            case "proto": hop.proto = value.lowercased()
            default: break
            }
        }
        return hop
    }

    /// The IP of a node: "192.0.2.43", "192.0.2.43:47011", "[2001:db8::1]:4711" or
    /// "2001:db8::1"; nil for "unknown", obfuscated names ("_hidden") and anything that is
    /// not a valid address ("cafe", "1.2.3.4.5", "999.1.1.1").
    static func nodeAddress(_ node: String) -> String? {
        var s = Substring(node)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            s = s[s.index(after: s.startIndex)..<close]
        } else if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") {
            s = s[..<colon]  // IPv4 with a port
        }
        guard IPAddress.parse(s) != nil else { return nil }
        return String(s)
    }
}
