internal import CTLS

/// A certificate and its key, loaded and checked by OpenSSL, that a listener serves:
/// the server side of TLS 1.2 and 1.3 with ALPN (h2 and http/1.1) and a cipher list.
/// Several on one listener are chosen by SNI (`choosing`).
///
/// Not Sendable: each worker loads its own (a worker is a process; its threads only
/// read it, as OpenSSL allows for an SSL_CTX).
public final class TLSContext {
    let raw: OpaquePointer
    /// Other contexts chosen by SNI, kept alive while this one points at them.
    var sniContexts: [TLSContext] = []

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Mozilla's "intermediate" TLS 1.2 list (TLS 1.3 suites are OpenSSL's defaults,
    /// which are the same three).
    public static let intermediateCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:"
        + "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

    /// Loads `cert` (PEM, leaf first, then the chain) and `key`; fails if either cannot
    /// be read or the key is not the certificate's.
    public init(cert: String, key: String, ciphers: String = TLSContext.intermediateCiphers, http2: Bool = false) throws(LoadError) {
        var error = [CChar](repeating: 0, count: 512)
        guard let ctx = gw_tls_ctx_new(cert, key, ciphers, nil, http2 ? 1 : 0, &error, error.count) else {
            throw LoadError(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        raw = ctx
    }

    init(client raw: OpaquePointer) {
        self.raw = raw
    }

    deinit { gw_tls_ctx_free(raw) }

    /// When the certificate (the leaf) expires, in seconds since 1970; nil if unknown.
    public var notAfter: Int64? {
        let t = gw_tls_ctx_not_after(raw)
        return t < 0 ? nil : t
    }

    /// Staples the DER OCSP response in `path` for clients that ask for one.
    public func staple(ocspFile path: String) throws(LoadError) {
        var error = [CChar](repeating: 0, count: 256)
        guard gw_tls_ctx_set_ocsp_file(raw, path, &error, error.count) == 1 else {
            throw LoadError(description: "ocsp " + String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    /// Whether the certificate names `host` (DNS names, wildcards).
    public func matches(_ host: String) -> Bool { gw_tls_ctx_matches(raw, host) == 1 }

    /// Clients that ask (SNI) for a name one of `others` has get that one; others get this.
    public func choosing(_ others: [TLSContext]) {
        sniContexts = others
        var pointers: [OpaquePointer?] = others.map { $0.raw }
        gw_tls_ctx_set_sni(raw, &pointers, Int32(others.count))
    }

    /// Session tickets sealed with these 80 bytes, shared by every worker (so a client
    /// resumes with any of them); tickets sealed with `previous` (the key before the last
    /// rotation) still open, and are renewed. Safe while other threads use the context.
    public func useTicketKey(_ key: [UInt8], previous: [UInt8]? = nil) {
        precondition(key.count == 80 && (previous?.count ?? 80) == 80)
        for c in [self] + sniContexts {
            key.withUnsafeBufferPointer { k in
                if let previous {
                    previous.withUnsafeBufferPointer { p in _ = gw_tls_ctx_set_ticket_keys(c.raw, k.baseAddress, p.baseAddress) }
                } else {
                    _ = gw_tls_ctx_set_ticket_keys(c.raw, k.baseAddress, nil)
                }
            }
        }
    }

    /// A client side, for tests and probes: no certificate check; `alpn`: protocols to offer.
    public static func client(alpn: [String] = []) -> TLSContext {
        var wire: [UInt8] = []
        for p in alpn { wire.append(UInt8(p.utf8.count)); wire += p.utf8 }
        let raw = wire.isEmpty ? gw_tls_client_ctx_new(nil, 0) : wire.withUnsafeBytes { b in
            gw_tls_client_ctx_new(b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count)
        }
        return TLSContext(client: raw!)
    }
}
