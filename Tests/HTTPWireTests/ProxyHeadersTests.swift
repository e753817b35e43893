import Testing
@testable import HTTPWire

/// PROXY protocol headers and forwarded headers: parsing only.
@Suite("PROXY protocol and forwarded headers")
struct ProxyHeadersTests {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Feeds the header whole, then byte by byte (needMore until the last), with a request after it.
    func check(_ header: [UInt8], _ expected: ProxyProtocol.Source?) throws {
        let request = Array("GET / HTTP/1.1\r\n".utf8)
        let whole = try ProxyProtocol.parse((header + request)[...])
        #expect(whole == .header(source: expected, consumed: header.count))
        for n in 1..<header.count {
            #expect(try ProxyProtocol.parse(header[0..<n]) == .needMore, "prefix of \(n) bytes")
        }
    }

    @Test("v1: TCP4, TCP6, UNKNOWN")
    func v1() throws {
        try check(Array("PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n".utf8), .init(address: "203.0.113.7", port: 56324))
        try check(Array("PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n".utf8), .init(address: "2001:db8::1", port: 4711))
        try check(Array("PROXY UNKNOWN\r\n".utf8), nil)
    }

    @Test("v2: PROXY over IPv4 and IPv6, LOCAL, with extra TLVs")
    func v2() throws {
        let v4: [UInt8] = Self.v2Signature + [0x21, 0x11, 0x00, 0x0F] + [198, 51, 100, 9] + [10, 0, 0, 1] + [0x1F, 0x90] + [0x01, 0xBB] + [0x04, 0x00, 0x00]
        try check(v4, .init(address: "198.51.100.9", port: 8080))
        var v6: [UInt8] = Self.v2Signature + [0x21, 0x21, 0x00, 0x24]
        v6 += [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1] + Array(repeating: 0, count: 16) + [0x12, 0x67, 0x01, 0xBB]
        try check(v6, .init(address: "2001:db8:0:0:0:0:0:1", port: 4711))
        try check(Self.v2Signature + [0x20, 0x00, 0x00, 0x00], nil)
    }

    @Test("refused: a plain request, a bad family, a long v1 line, bad ports")
    func refused() {
        for bad in ["GET / HTTP/1.1\r\n", "PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n",
                    "PROXY TCP4 a.b.c.d 1.2.3.4 1 2\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
                    "PROXY " + String(repeating: "x", count: 120),
                    // Addresses that only look like addresses, and ports with signs or spaces.
                    "PROXY TCP4 999.1.1.1 1.2.3.4 1 2\r\n", "PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n",
                    "PROXY TCP6 cafe 2001:db8::2 1 2\r\n", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
                    "PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n"] {
            #expect(throws: HTTPParseError.self, "\(bad)") { try ProxyProtocol.parse(Array(bad.utf8)[...]) }
        }
        #expect(throws: HTTPParseError.self) { try ProxyProtocol.parse((Self.v2Signature + [0x31, 0x11, 0, 0])[...]) }
    }

    func hops(_ fields: [(String, String)], _ kind: ForwardedHeaders.Kind = .xForwardedFor) -> [ForwardedHeaders.Hop] {
        ForwardedHeaders.hops(HTTPHeaders(fields), kind: kind)
    }

    @Test("forwarded headers: RFC 7239 and X-Forwarded-*")
    func forwarded() {
        #expect(hops([("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"), ("Forwarded", "For=\"[2001:db8:cafe::17]:4711\"")], .forwarded)
                == [.init(address: "192.0.2.60", proto: "https"), .init(address: "2001:db8:cafe::17", proto: nil)])
        #expect(hops([("Forwarded", "for=unknown, for=_hidden, for=198.51.100.17:80")], .forwarded)
                == [.init(address: nil, proto: nil), .init(address: nil, proto: nil), .init(address: "198.51.100.17", proto: nil)])
        #expect(hops([("X-Forwarded-For", "203.0.113.7, 10.0.0.2"), ("X-Forwarded-Proto", "HTTPS")])
                == [.init(address: "203.0.113.7", proto: nil), .init(address: "10.0.0.2", proto: "https")])
        // Only the kind the proxy writes is read: the other is the client's own.
        #expect(hops([("Forwarded", "for=1.2.3.4;proto=https"), ("X-Forwarded-For", "5.6.7.8")]) == [.init(address: "5.6.7.8", proto: nil)])
        #expect(hops([("Forwarded", "for=1.2.3.4"), ("X-Forwarded-For", "5.6.7.8"), ("X-Forwarded-Proto", "https")], .forwarded)
                == [.init(address: "1.2.3.4", proto: nil)])
        #expect(hops([("Forwarded", "for=1.2.3.4;proto=https")]) == [])
        #expect(hops([]) == [])
        // Not addresses: no hop address (the caller believes nothing beyond them).
        #expect(hops([("X-Forwarded-For", "cafe, 1.2.3.4.5, 999.1.1.1, 10.0.0.256, 1.2.3.4")])
                == [nil, nil, nil, nil, "1.2.3.4"].map { ForwardedHeaders.Hop(address: $0, proto: nil) })
        #expect(hops([("Forwarded", "for=cafe, for=\"[::ffff:1.2.3.4]\", for=\"[1::2::3]\"")], .forwarded).map(\.address)
                == [nil, "::ffff:1.2.3.4", nil])
    }

    @Test("IP addresses: valid forms and lookalikes")
    func addresses() {
        for ok in ["1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::7", "fe80::1:2", "1:2:3:4:5:6:7:8", "::ffff:10.0.0.1", "1::"] {
            #expect(IPAddress.parse(Substring(ok)) != nil, "\(ok)")
        }
        for bad in ["", "cafe", "1.2.3", "1.2.3.4.5", "999.1.1.1", "1.2.3.04444", "+1.2.3.4", " 1.2.3.4", "1:2:3:4:5:6:7:8:9",
                    "1::2::3", "12345::", "::g", "fe80::1%eth0", "1.2.3.4:80", "[::1]", "١.٢.٣.٤"] {
            #expect(IPAddress.parse(Substring(bad)) == nil, "\(bad)")
        }
    }
}
