import Testing
@testable import HTTPWire

/// HTTP dates, preconditions and ranges: the rules a static response follows.
@Suite("Static file rules")
struct StaticRulesTests {
    // RFC 9110 §5.6.7's example, in its three forms.
    static let example: Int64 = 784_111_777

    @Test("HTTP dates: the three forms parse to the same time; junk does not parse")
    func dates() {
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == Self.example)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT") == Self.example)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == Self.example)
        #expect(HTTPDate.format(epochSeconds: Self.example) == "Sun, 06 Nov 1994 08:49:37 GMT")
        for t: Int64 in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            #expect(HTTPDate.parse(Substring(HTTPDate.format(epochSeconds: t))) == t, "round trip of \(t)")
        }
        for bad in ["", "yesterday", "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                    "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 PST"] {
            #expect(HTTPDate.parse(Substring(bad)) == nil, "\(bad)")
        }
    }

    static let file = FileValidators(modified: example, size: 1000)

    func outcome(_ method: String, _ headers: [(String, String)]) -> ConditionalRequest.Outcome {
        ConditionalRequest.evaluate(method: method, headers: HTTPHeaders(headers), file: Self.file)
    }

    @Test("preconditions in RFC 9110 §13.2.2 order")
    func preconditions() {
        let etag = Self.file.etag
        #expect(etag == "\"2ebc98a1-3e8\"")
        let same = "Sun, 06 Nov 1994 08:49:37 GMT", earlier = "Sun, 06 Nov 1994 08:49:36 GMT"
        #expect(outcome("GET", []) == .proceed)
        #expect(outcome("GET", [("If-None-Match", etag)]) == .notModified)
        #expect(outcome("HEAD", [("If-None-Match", "\"x\", W/\(etag)")]) == .notModified, "weak comparison")
        #expect(outcome("GET", [("If-None-Match", "*")]) == .notModified)
        #expect(outcome("GET", [("If-None-Match", "\"other\"")]) == .proceed)
        #expect(outcome("POST", [("If-None-Match", etag)]) == .preconditionFailed)
        #expect(outcome("GET", [("If-Modified-Since", same)]) == .notModified)
        #expect(outcome("GET", [("If-Modified-Since", earlier)]) == .proceed)
        #expect(outcome("GET", [("If-Modified-Since", "garbage")]) == .proceed, "a bad date is ignored")
        // If-None-Match wins over If-Modified-Since (a browser sends both).
        #expect(outcome("GET", [("If-None-Match", "\"other\""), ("If-Modified-Since", same)]) == .proceed)
        #expect(outcome("GET", [("If-Match", etag)]) == .proceed)
        #expect(outcome("GET", [("If-Match", "W/\(etag)")]) == .preconditionFailed, "If-Match compares strongly")
        #expect(outcome("GET", [("If-Match", "\"other\"")]) == .preconditionFailed)
        #expect(outcome("GET", [("If-Unmodified-Since", earlier)]) == .preconditionFailed)
        #expect(outcome("GET", [("If-Unmodified-Since", same)]) == .proceed)
    }

    @Test("If-Range: a strong tag or the exact Last-Modified")
    func ifRange() {
        #expect(ConditionalRequest.rangeApplies(ifRange: nil, file: Self.file))
        #expect(ConditionalRequest.rangeApplies(ifRange: Self.file.etag, file: Self.file))
        #expect(!ConditionalRequest.rangeApplies(ifRange: "\"old\"", file: Self.file))
        #expect(!ConditionalRequest.rangeApplies(ifRange: "W/" + Self.file.etag, file: Self.file))
        #expect(ConditionalRequest.rangeApplies(ifRange: "Sun, 06 Nov 1994 08:49:37 GMT", file: Self.file))
        #expect(!ConditionalRequest.rangeApplies(ifRange: "Sun, 06 Nov 1994 08:49:38 GMT", file: Self.file))
    }

    @Test("byte ranges: first-last, open, suffix, clamped, unsatisfiable, ignored")
    func ranges() {
        func r(_ h: String?, _ size: UInt64 = 1000) -> ByteRange.Outcome { ByteRange.evaluate(h, size: size) }
        #expect(r(nil) == .whole)
        #expect(r("bytes=0-0") == .partial(start: 0, end: 0))
        #expect(r("bytes=0-499") == .partial(start: 0, end: 499))
        #expect(r("bytes=500-") == .partial(start: 500, end: 999))
        #expect(r("bytes=-200") == .partial(start: 800, end: 999))
        #expect(r("bytes=-5000") == .partial(start: 0, end: 999))
        #expect(r("bytes=900-5000") == .partial(start: 900, end: 999), "the end is clamped")
        #expect(r("Bytes=1-2") == .partial(start: 1, end: 2), "the unit is case-insensitive")
        #expect(r("bytes=1000-") == .unsatisfiable)
        #expect(r("bytes=99999999999999999999999-") == .unsatisfiable)
        #expect(r("bytes=-0") == .unsatisfiable)
        #expect(r("bytes=0-", 0) == .unsatisfiable)
        #expect(r("bytes=5-1") == .whole, "invalid: ignored")
        #expect(r("bytes=a-b") == .whole)
        #expect(r("bytes=-") == .whole)
        #expect(r("items=0-5") == .whole, "unknown unit")
        #expect(r("bytes=0-1,5-6") == .whole, "several ranges: the whole file")
    }

    @Test("a head written field by field is the head writeHead writes; numbers and tags without Strings")
    func trustedHead() {
        func text(_ f: (inout [UInt8]) -> Void) -> String {
            var out: [UInt8] = []
            f(&out)
            return String(decoding: out, as: UTF8.self)
        }
        for n: UInt64 in [0, 7, 10, 99, 100, 4096, 1_000_000, UInt64.max] {
            #expect(text { HTTPResponseWriter.appendDecimal(n, into: &$0) } == String(n))
            #expect(text { HTTPResponseWriter.appendHex(n, into: &$0) } == String(n, radix: 16))
        }
        #expect(FileValidators(modified: 0x5f5e100, size: 0).etag == "\"5f5e100-0\"")
        for version in [HTTPVersion.http1_1, HTTPVersion(major: 1, minor: 0)] {
            for keep in [true, false] {
                var fast: [UInt8] = []
                HTTPResponseWriter.appendStatusLine(200, date: "D", into: &fast)
                HTTPResponseWriter.appendFieldName("Server", into: &fast)
                fast.append(contentsOf: "s".utf8)
                HTTPResponseWriter.appendCRLF(into: &fast)
                HTTPResponseWriter.appendEndOfHead(framing: .contentLength(12), keepAlive: keep, version: version, into: &fast)
                var slow: [UInt8] = []
                HTTPResponseWriter.writeHead(status: 200, headers: HTTPHeaders([("Server", "s")]), framing: .contentLength(12),
                                             keepAlive: keep, version: version, date: "D", into: &slow)
                #expect(fast == slow, "\(String(decoding: fast, as: UTF8.self))")
            }
        }
    }
}
