import Testing
@testable import FastCGIWire

func hex(_ s: String) -> [UInt8] {
    let digits = s.filter { !$0.isWhitespace }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

func header(_ type: UInt8, id: UInt16 = 1, length: Int, padding: Int) -> [UInt8] {
    [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), UInt8(padding), 0]
}

@Suite("FastCGI encoder golden bytes")
struct FastCGIEncoderTests {
    @Test func beginRequest() {
        var out: [UInt8] = []
        FastCGIEncoder.appendBeginRequest(requestID: 1, role: .responder, keepConnection: true, into: &out)
        #expect(out == hex("01 01 0001 0008 00 00  0001 01 0000000000"))
        out = []
        FastCGIEncoder.appendBeginRequest(requestID: 0x1234, role: .authorizer, keepConnection: false, into: &out)
        #expect(out == hex("01 01 1234 0008 00 00  0002 00 0000000000"))
    }

    @Test("decimal pairs: the same bytes as the String pair, after the other pairs of the record")
    func decimalPairs() throws {
        for (prefix, value) in [("", UInt64(0)), ("t=", 1_796_616_552_946_123), ("", UInt64.max)] as [(StaticString, UInt64)] {
            var viaStrings: [UInt8] = []
            FastCGIEncoder.appendParams(requestID: 1, strings: [("A", "b"), ("N", "\(prefix)\(value)")], into: &viaStrings)
            var viaDigits: [UInt8] = []
            FastCGIEncoder.appendParams(requestID: 1, strings: [("A", "b")], decimals: [.init("N", prefix: prefix, value)], into: &viaDigits)
            #expect(viaDigits == viaStrings, "\(prefix)\(value)")
        }
    }

    @Test func abortRequest() {
        var out: [UInt8] = []
        FastCGIEncoder.appendAbortRequest(requestID: 7, into: &out)
        #expect(out == hex("01 02 0007 0000 00 00"))
    }

    @Test("name-value length encodings", arguments: [
        (0, [0x00] as [UInt8]), (127, [0x7F]), (128, [0x80, 0x00, 0x00, 0x80]), (65535, [0x80, 0x00, 0xFF, 0xFF]),
        (70000, [0x80, 0x01, 0x11, 0x70]),
    ])
    func nameValueLength(length: Int, encoded: [UInt8]) throws {
        var out: [UInt8] = []
        let value = [UInt8](repeating: 0x61, count: length)
        FastCGINameValue.append(name: Array("N".utf8), value: value, into: &out)
        #expect(Array(out[0..<1]) == [1])
        #expect(Array(out[1..<(1 + encoded.count)]) == encoded)
        #expect(out.count == 1 + encoded.count + 1 + length)
        // The same length as a name.
        var asName: [UInt8] = []
        FastCGINameValue.append(name: value, value: [UInt8](), into: &asName)
        #expect(Array(asName[0..<encoded.count]) == encoded)
        let back = try FastCGINameValue.decode(out)
        #expect(back == [FastCGIPair(name: Array("N".utf8), value: value)])
    }

    @Test func truncatedPairsAreErrors() {
        #expect(throws: FastCGIError.self) { try FastCGINameValue.decode([0x80, 0x00]) }
        #expect(throws: FastCGIError.self) { try FastCGINameValue.decode([0x03, 0x01, 0x41]) }
    }

    @Test("STDIN split into records of at most 65535 bytes, padded to 8", arguments: [0, 1, 7, 8, 65535, 65536, 200_000])
    func stdin(size: Int) {
        let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var out: [UInt8] = []
        body.withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: 1, bytes: $0, into: &out) }
        FastCGIEncoder.appendEndOfStream(.stdin, requestID: 1, into: &out)

        var expected: [UInt8] = []
        var offset = 0
        while offset < size {
            let n = min(65535, size - offset)
            let pad = (8 - n % 8) % 8
            expected += header(5, length: n, padding: pad) + body[offset..<(offset + n)] + [UInt8](repeating: 0, count: pad)
            offset += n
        }
        expected += hex("01 05 0001 0000 00 00")
        #expect(out == expected)
        #expect(out.count % 8 == 0)
        let records = size == 0 ? 1 : (size + 65534) / 65535 + 1
        #expect(records == [0: 1, 1: 2, 7: 2, 8: 2, 65535: 2, 65536: 3, 200_000: 5][size])
    }

    @Test func stdinGoldenForOneByte() {
        var out: [UInt8] = []
        ([0x41] as [UInt8]).withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: 1, bytes: $0, into: &out) }
        #expect(out == hex("01 05 0001 0001 07 00  41 00000000000000"))
    }

    @Test func paramsStream() throws {
        var out: [UInt8] = []
        FastCGIEncoder.appendParams(requestID: 1, [FastCGIPair("REQUEST_METHOD", "GET"), FastCGIPair("A", "")], into: &out)
        let content: [UInt8] = [14, 3] + Array("REQUEST_METHODGET".utf8) + [1, 0, 0x41]
        let pad = (8 - content.count % 8) % 8
        #expect(out == header(4, length: content.count, padding: pad) + content + [UInt8](repeating: 0, count: pad) + hex("01 04 0001 0000 00 00"))
    }

    @Test("PARAMS from Strings: the bytes of the pair form, in one record or split, and none for no pairs")
    func paramsFromStrings() {
        let cases: [[(name: String, value: String)]] = [
            [], [("REQUEST_METHOD", "GET"), ("A", "")], [("LONG", String(repeating: "v", count: 300)), ("É", "ü")],
            [("HTTP_X_BIG", String(repeating: "x", count: 100_000)), ("B", "b")],
        ]
        for (pairs, prefix) in cases.flatMap({ c in [(c, [UInt8]()), (c, [1, 2, 3])] }) {
            // (After other records too: the pairs are written at the end of what `out` holds.)
            var fast = prefix, slow = prefix
            FastCGIEncoder.appendParams(requestID: 9, strings: pairs, into: &fast)
            FastCGIEncoder.appendParams(requestID: 9, pairs.map { FastCGIPair($0.name, $0.value) }, into: &slow)
            #expect(fast == slow, "\(pairs.map(\.name))")
        }
    }

    @Test func largeParamsSplitAcrossRecords() throws {
        // One value of 100,000 bytes: the pair stream spans two records; decoding the joined
        // contents gives the pair back.
        let big = String(repeating: "x", count: 100_000)
        var out: [UInt8] = []
        FastCGIEncoder.appendParams(requestID: 3, [FastCGIPair("HTTP_X_BIG", big)], into: &out)
        var joined: [UInt8] = []
        var i = 0
        var lengths: [Int] = []
        while i < out.count {
            #expect(out[1] == 4)
            let len = Int(out[i + 4]) << 8 | Int(out[i + 5])
            let pad = Int(out[i + 6])
            lengths.append(len)
            joined += out[(i + 8)..<(i + 8 + len)]
            i += 8 + len + pad
        }
        #expect(lengths == [65535, 100_000 + 1 + 4 + 10 - 65535, 0])
        #expect(try FastCGINameValue.decode(joined) == [FastCGIPair("HTTP_X_BIG", big)])
    }

    @Test func getValues() {
        var out: [UInt8] = []
        FastCGIEncoder.appendGetValues(["FCGI_MAX_CONNS", "FCGI_MPXS_CONNS"], into: &out)
        let content: [UInt8] = [14, 0] + Array("FCGI_MAX_CONNS".utf8) + [15, 0] + Array("FCGI_MPXS_CONNS".utf8)
        let pad = (8 - content.count % 8) % 8
        #expect(out == header(9, id: 0, length: content.count, padding: pad) + content + [UInt8](repeating: 0, count: pad))
    }
}
