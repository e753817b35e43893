import TOMLKit

/// [[tls]] sections: which listener speaks TLS, with which certificate and key. What
/// only OpenSSL can tell (the key is the certificate's, the certificate has not
/// expired) is checked by the TLS module (TLSCheck), at the lines kept here.
extension ConfigLoader {
    static let tlsKeys = ["bind", "cert", "key", "ciphers", "ocsp"]

    static func readTLS(_ r: inout ConfigReader, _ root: TOMLTable, server: ServerConfig) -> [TLSConfig] {
        var out: [TLSConfig] = []
        for (i, t) in tableArray(&r, root, "tls").enumerated() {
            let p = "tls[\(i)]"
            r.rejectUnknownKeys(t, path: p, allowed: tlsKeys)
            let before = r.issues.count
            var bind: BindAddress? = nil
            if let text = r.string(t, "bind", p) {
                switch ConfigValues.parseBind(text) {
                case .success(.unix(let path)): bind = .unix(path: r.resolve(path))
                case .success(let a): bind = a
                case .failure(let e): r.fail("\(p).bind", e.message)
                }
                if let b = bind, !server.bind.contains(b) {
                    r.fail("\(p).bind", "\(b) is not one of server.bind (\(server.bind.map(\.description).joined(separator: ", ")))")
                }
            } else if t["bind"] == nil {
                r.fail(p, "needs bind, the server.bind address that speaks TLS")
            }
            let cert = r.string(t, "cert", p).map(r.resolve)
            let key = r.string(t, "key", p).map(r.resolve)
            for (k, v) in [("cert", cert), ("key", key)] where v == nil && t[k] == nil { r.fail(p, "needs \(k) (a PEM file)") }
            var ciphers: String? = nil
            if let c = r.string(t, "ciphers", p) {
                if c.isEmpty || c.contains(where: { $0 == " " || $0 == "\"" }) { r.fail("\(p).ciphers", "expected an OpenSSL cipher list such as \"ECDHE-RSA-AES128-GCM-SHA256:...\"") }
                ciphers = c
            }
            let ocsp = r.string(t, "ocsp", p).map(r.resolve)
            guard r.issues.count == before, let bind, let cert, let key else { continue }
            var entry = TLSConfig(bind: bind, cert: cert, key: key, ciphers: ciphers,
                                  certLine: r.index.line(for: "\(p).cert"), keyLine: r.index.line(for: "\(p).key"))
            entry.ocsp = ocsp
            entry.ocspLine = r.index.line(for: "\(p).ocsp")
            out.append(entry)
        }
        // Entries on one listener: the first is its default, others are chosen by SNI.
        return out
    }
}
