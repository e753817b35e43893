/// A certificate and key for a listener ([[tls]]).
public struct TLSConfig: Sendable, Equatable {
    public var bind: BindAddress
    /// PEM: the leaf first, then the chain.
    public var cert: String
    public var key: String
    /// An OpenSSL cipher list for TLS 1.2 (nil: Mozilla's "intermediate").
    public var ciphers: String?
    /// A DER OCSP response to staple (refreshed by whoever fetches it; a HUP reloads it).
    public var ocsp: String? = nil
    public var ocspLine: Int? = nil
    /// Where cert and key are set, for what is found when they are loaded.
    public var certLine: Int?
    public var keyLine: Int?

    public init(bind: BindAddress, cert: String, key: String, ciphers: String? = nil, certLine: Int? = nil, keyLine: Int? = nil) {
        self.bind = bind
        self.cert = cert
        self.key = key
        self.ciphers = ciphers
        self.certLine = certLine
        self.keyLine = keyLine
    }
}
