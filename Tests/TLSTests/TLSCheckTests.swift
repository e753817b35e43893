import Foundation
import GatewayConfig
import Testing
@testable import TLS

/// [[tls]] in gateway.toml: what the loader checks, and what OpenSSL tells at the lines.
@Suite struct TLSCheckTests {
    static func load(_ tls: String) throws(ConfigError) -> Configuration {
        try ConfigLoader.load(text: "[server]\nbind = [\"127.0.0.1:8443\", \"127.0.0.1:8080\"]\n\n" + tls, file: "gateway.toml",
                              baseDirectory: "/", cpuCount: 2)
    }

    static func problems(_ tls: String) -> [String] {
        do {
            let c = try load(tls)
            return TLSCheck.problems(c, now: Int64(Date().timeIntervalSince1970)).map(\.description)
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test("a listener with two certificates: loaded, rendered for the workers, the first the default")
    func loads() throws {
        let a = try TestCertificates.make("a", names: ["a.test"]), b = try TestCertificates.make("b", names: ["*.b.test"])
        let c = try Self.load("[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(a.cert)\"\nkey = \"\(a.key)\"\n"
                              + "[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(b.cert)\"\nkey = \"\(b.key)\"\n")
        #expect(c.tls.count == 2 && c.tls(for: .tcp(host: "127.0.0.1", port: 8443)).count == 2)
        #expect(TLSCheck.problems(c, now: Int64(Date().timeIntervalSince1970)).isEmpty)
        let again = try ConfigLoader.load(text: c.renderTOML(), file: "x", baseDirectory: "/", cpuCount: 2)
        #expect(again.tls.map(\.cert) == c.tls.map(\.cert) && again.tls.map(\.bind) == c.tls.map(\.bind))
        let contexts = try TLSCheck.contexts(c, ticketKeys: (Array(repeating: 7, count: 80), nil, 0))
        #expect(contexts.count == 2 && contexts[1] == nil)
        #expect(try #require(contexts[0]).matches("a.test") && contexts[0]!.sniContexts.count == 1)
    }

    @Test("problems at their lines: another bind, a missing file, a key of another certificate, an expired one")
    func problems() throws {
        let a = try TestCertificates.make("a", names: ["a.test"]), b = try TestCertificates.make("b", names: ["*.b.test"])
        let old = try TestCertificates.make("expired", names: ["old.test"], days: -1)
        #expect(Self.problems("[[tls]]\nbind = \"127.0.0.1:9999\"\ncert = \"\(a.cert)\"\nkey = \"\(a.key)\"\n")
                == ["gateway.toml:5: tls[0].bind: 127.0.0.1:9999 is not one of server.bind (127.0.0.1:8443, 127.0.0.1:8080)"])
        #expect(Self.problems("[[tls]]\nbind = \"127.0.0.1:8443\"\nkey = \"\(a.key)\"\n") == ["gateway.toml:4: tls[0]: needs cert (a PEM file)"])
        let missing = Self.problems("[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(a.cert)\"\nkey = \"/nonexistent/site.key\"\n")
        #expect(missing.count == 1 && missing[0].hasPrefix("gateway.toml:7: tls[0].key: /nonexistent/site.key: cannot load the key"), "\(missing)")
        let mismatch = Self.problems("[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(a.cert)\"\nkey = \"\(b.key)\"\n")
        #expect(mismatch == ["gateway.toml:7: tls[0].key: \(b.key): the key does not match the certificate"], "\(mismatch)")
        let expired = Self.problems("[[tls]]\nbind = \"127.0.0.1:8443\"\ncert = \"\(old.cert)\"\nkey = \"\(old.key)\"\n")
        #expect(expired.count == 1 && expired[0].hasPrefix("gateway.toml:6: tls[0].cert: the certificate \(old.cert) expired on "), "\(expired)")
    }
}
