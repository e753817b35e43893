import GatewayConfig

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
                if let end = context.notAfter, end < now {
                    issues.append(ConfigIssue(file: config.sourcePath, line: t.certLine, key: "\(p).cert",
                                              message: "the certificate \(t.cert) expired on \(HTTPDateText.format(end))"))
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
            for t in entries { loaded.append(try TLSContext(cert: t.cert, key: t.key, ciphers: t.ciphers ?? TLSContext.intermediateCiphers)) }
            loaded[0].choosing(Array(loaded.dropFirst()))
            if let k = ticketKeys { loaded[0].useTicketKey(k.current, previous: k.previous) }
            out.append(loaded[0])
        }
        return out
    }
}

/// A date as "2026-12-07 06:00 UTC" (no Foundation in the server's modules).
enum HTTPDateText {
    static func format(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rest = seconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d)) \(two(rest / 3600)):\(two(rest % 3600 / 60)) UTC"
    }
}
