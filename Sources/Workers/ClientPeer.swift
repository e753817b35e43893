import GatewayConfig
import HTTPWire

/// Who the client is, as the app and the access log see it: the socket's peer (or the
/// PROXY protocol's source), unless a trusted proxy says otherwise.
struct ClientPeer {
    var address: String
    var port: Int
    var https: Bool
}

extension WorkerContext {
    /// Applies forwarded_allow_ips: when the peer is trusted, the client is the nearest
    /// untrusted address in the proxies' chain (walking from the nearest proxy, as
    /// nginx's real_ip_recursive), and the scheme is what that hop's proxy said. Only
    /// the header named by `forwarded_header` is read. A hop that is not a valid address
    /// stops the walk: nothing a trusted proxy did not vouch for is believed, and the
    /// client is the last trusted hop (or the peer). Headers from anyone else change nothing.
    func clientPeer(_ peer: (address: String, port: Int), head: HTTPRequestHead?, secure: Bool = false) -> ClientPeer {
        var client = ClientPeer(address: peer.address, port: peer.port, https: secure)
        let trusted = config.server.forwardedAllowIPs
        guard !trusted.isEmpty, let head, isTrusted(peer.address, trusted) else { return client }
        let hops = ForwardedHeaders.hops(head.headers, kind: config.server.forwardedHeader)
        guard !hops.isEmpty else { return client }
        var chosen = hops.count - 1
        while chosen > 0, let a = hops[chosen].address, isTrusted(a, trusted) { chosen -= 1 }
        guard let a = hops[chosen].address else {
            // Not an address (or "unknown"): the client is the trusted hop after it.
            if chosen + 1 < hops.count, let proxy = hops[chosen + 1].address {
                client.address = proxy
                client.port = 0
            }
            if let proto = hops.last?.proto { client.https = proto == "https" }
            return client
        }
        client.address = a
        client.port = 0
        if let proto = hops[chosen].proto ?? hops.last?.proto { client.https = proto == "https" }
        return client
    }

    /// Access lists (status_allow, a route's allow) for the client as `clientPeer` found
    /// it; a unix-socket peer with no PROXY or forwarded address is local.
    func isAllowed(_ client: String, _ ranges: [IPRange]) -> Bool {
        isTrusted(client.isEmpty ? "127.0.0.1" : client, ranges)
    }

    func isTrusted(_ address: String, _ ranges: [IPRange]) -> Bool {
        let a = Substring(address)
        return ranges.contains { $0.contains(a) }
    }
}
