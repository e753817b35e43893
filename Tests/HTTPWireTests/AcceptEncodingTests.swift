import Testing
@testable import HTTPWire

@Suite struct AcceptEncodingTests {
    @Test("gzip allowed: named with q above 0, or by * when not named")
    func gzip() {
        for (value, allowed) in [("gzip", true), ("deflate, gzip;q=0.5", true), ("GZIP", true), ("x-gzip", true), (" br , gzip ; q=1.0", true),
                                 ("gzip;q=0", false), ("gzip; q=0.000", false), ("br", false), ("", false), ("identity", false),
                                 ("*", true), ("*;q=0", false), ("gzip;q=0, *", false), ("br, *;q=0.1", true)] {
            #expect(AcceptEncoding.allowsGzip(Substring(value)) == allowed, "\(value)")
        }
    }
}
