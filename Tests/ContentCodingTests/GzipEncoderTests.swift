import Foundation
import Testing
import ContentCoding

/// The gzip stream, checked by Python's zlib (the decoder browsers' own matches).
@Suite struct GzipEncoderTests {
    /// What Python's zlib makes of `gzip` bytes: the whole text, or as far as it goes
    /// for a stream that is not finished yet.
    static func decoded(_ gzip: [UInt8], whole: Bool) throws -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = whole
            ? "import sys,gzip; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"
            : "import sys,zlib; sys.stdout.buffer.write(zlib.decompressobj(31).decompress(sys.stdin.buffer.read()))"
        p.arguments = ["python3", "-c", script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(gzip))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return Array(data)
    }

    @Test("pieces with a sync flush each decode as far as they went; finished, the whole body")
    func streamed() throws {
        let encoder = try #require(GzipEncoder(level: 1))
        var out: [UInt8] = [], sent: [UInt8] = []
        for i in 0..<3 {
            let piece = Array(String(repeating: "line \(i) of a streamed page\n", count: 500).utf8)
            sent += piece
            encoder.compress(piece[...], flush: true, into: &out)
            #expect(try Self.decoded(out, whole: false) == sent, "after piece \(i)")
        }
        encoder.finish(into: &out)
        #expect(try Self.decoded(out, whole: true) == sent)
        #expect(out.count < sent.count / 10)
    }

    @Test("a big body without flushes, a short one with a small window, an empty one")
    func sizes() throws {
        var big: [UInt8] = []
        var seed: UInt32 = 7
        for _ in 0..<(3 << 20) {  // 3 MiB, half random: more than one output buffer per call
            seed = seed &* 1664525 &+ 1013904223
            big.append(seed >> 24 < 128 ? UInt8(truncatingIfNeeded: seed >> 16) : UInt8(ascii: "a"))
        }
        let e = try #require(GzipEncoder(level: 6, expectedLength: UInt64(big.count)))
        var out: [UInt8] = []
        e.compress(big[..<(1 << 20)], flush: false, into: &out)
        e.compress(big[(1 << 20)...], flush: false, into: &out)
        e.finish(into: &out)
        #expect(try Self.decoded(out, whole: true) == big)

        let page = Array("<html><body>hello</body></html>".utf8)
        let small = try #require(GzipEncoder(level: 1, expectedLength: UInt64(page.count)))
        out = []
        small.compress(page[...], flush: false, into: &out)
        small.finish(into: &out)
        #expect(try Self.decoded(out, whole: true) == page)

        let empty = try #require(GzipEncoder(level: 1))
        out = []
        empty.finish(into: &out)
        #expect(try Self.decoded(out, whole: true) == [])
    }
}
