import GatewayConfig
import HTTPWire

/// What `gatewayd check` (and every start and HUP) asks OpenSSL of each [[tls]]: the
/// certificate and key load, the key is the certificate's, the certificate has not
/// expired. Each problem is reported at its line.
public enum TLSCheck {
    public static func problems(_ config: Configuration, now: Int64) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        for (i, t) in config.tls.enumerated() {
            let p = "tls[\(i)]"
            do {
                let context = try TLSContext(cert: t.cert, key: t.key, ciphers: t.ciphers ?? TLSContext.intermediateCiphers)
                if let o = t.ocsp {
                    do { try context.staple(ocspFile: o) } catch {
                        issues.append(ConfigIssue(file: config.sourcePath, line: t.ocspLine, key: "\(p).ocsp", message: "\(o): \(error.description.dropFirst(5))"))
                    }
                }
                if let end = context.notAfter, end < now {
                    issues.append(ConfigIssue(file: config.sourcePath, line: t.certLine, key: "\(p).cert",
                                              message: "the certificate \(t.cert) expired on \(HTTPDate.format(epochSeconds: end))"))
                }
            } catch {
                let aboutKey = error.description.hasPrefix("cannot load the key") || error.description.hasPrefix("the key does not match")
                let aboutCiphers = error.description.hasPrefix("ciphers")
                let key = aboutKey ? "\(p).key" : aboutCiphers ? "\(p).ciphers" : "\(p).cert"
                let file = aboutKey ? t.key : t.cert
                issues.append(ConfigIssue(file: config.sourcePath, line: aboutKey ? t.keyLine : t.certLine, key: key,
                                          message: aboutCiphers ? error.description : "\(file): \(error.description)"))
            }
        }
        return issues
    }

    /// The contexts each TLS listener serves, by its place in server.bind (nil: plain).
    /// Several certificates on one listener: the first is the default, the rest by SNI.
    public static func contexts(_ config: Configuration, ticketKeys: (current: [UInt8], previous: [UInt8]?, sequence: UInt64)?)
        throws(TLSContext.LoadError) -> [TLSContext?] {
        var out: [TLSContext?] = []
        for bind in config.server.bind {
            let entries = config.tls(for: bind)
            guard !entries.isEmpty else { out.append(nil); continue }
            var loaded: [TLSContext] = []
            // h2 by ALPN where the worker speaks it: epoll workers, unless http2 = false.
            let h2 = config.server.http2 && config.server.workerClass == .epoll
            for t in entries {
                let context = try TLSContext(cert: t.cert, key: t.key, ciphers: t.ciphers ?? TLSContext.intermediateCiphers, http2: h2)
                if let o = t.ocsp { try context.staple(ocspFile: o) }
                loaded.append(context)
            }
            loaded[0].choosing(Array(loaded.dropFirst()))
            if let k = ticketKeys { loaded[0].useTicketKey(k.current, previous: k.previous) }
            out.append(loaded[0])
        }
        return out
    }
}
