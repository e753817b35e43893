import Foundation
import Testing
@testable import HTTPWire

/// The fixture corpus: every `Fixtures/{valid,invalid}/NNN.http` beside its `NNN.expect`.
/// Each case is fed whole, one byte at a time, and followed by trailing bytes that the
/// parser must leave alone (a pipelined next request).
struct Fixture: CustomTestStringConvertible, Sendable {
    let name: String
    let bytes: [UInt8]
    let expect: [String: [String]]
    var testDescription: String { "\(name): \(expect["#"]?.first ?? "")" }

    var limits: HTTPLimits {
        var l = HTTPLimits()
        for spec in expect["limits"] ?? [] {
            for pair in spec.split(separator: ",") {
                let kv = pair.split(separator: "=")
                let v = Int(kv[1])!
                switch kv[0] {
                case "maxRequestLine": l.maxRequestLine = v
                case "maxHeaderCount": l.maxHeaderCount = v
                case "maxHeaderFieldSize": l.maxHeaderFieldSize = v
                case "maxHeadSize": l.maxHeadSize = v
                case "maxChunkExtension": l.maxChunkExtension = v
                case "maxBodySize": l.maxBodySize = UInt64(v)
                default: fatalError("unknown limit \(kv[0])")
                }
            }
        }
        return l
    }

    static func load(_ kind: String) -> [Fixture] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(kind)")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { $0.hasSuffix(".http") }.sorted().map { file in
            let base = String(file.dropLast(5))
            let bytes = [UInt8](try! Data(contentsOf: dir.appendingPathComponent(file)))
            let text = String(decoding: try! Data(contentsOf: dir.appendingPathComponent(base + ".expect")), as: UTF8.self)
            var expect: [String: [String]] = [:]
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                let key: String, value: String
                if line.hasPrefix("# ") { key = "#"; value = String(line.dropFirst(2)) }
                else if let sp = line.firstIndex(of: " ") { key = String(line[..<sp]); value = String(line[line.index(after: sp)...]) }
                else { key = String(line); value = "" }
                expect[key, default: []].append(value)
            }
            return Fixture(name: "\(kind)/\(base)", bytes: bytes, expect: expect)
        }
    }
}

/// What the parser reported for one message.
struct Parsed {
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var trailers: HTTPHeaders?
}

/// Feeds `input` in pieces of `piece` bytes (all at once when nil) until one message ends.
/// Returns the message and the bytes left unconsumed in the caller's buffer.
func parseOne(_ input: [UInt8], piece: Int?, limits: HTTPLimits) throws(HTTPParseError) -> (Parsed, [UInt8]) {
    var parser = HTTPRequestParser(limits: limits)
    var buffer: [UInt8] = []
    var fed = 0
    var result = Parsed()
    while fed < input.count {
        let n = min(piece ?? input.count, input.count - fed)
        buffer.append(contentsOf: input[fed..<(fed + n)])
        fed += n
        while true {
            let step = try parser.parse(buffer[...])
            var done = false
            switch step.event {
            case .head(let h): result.head = h
            case .body(let r): result.body.append(contentsOf: buffer[r])
            case .end(let t): result.trailers = t; done = true
            case nil: break
            }
            buffer.removeFirst(step.consumed)
            if done { return (result, buffer + input[fed...]) }
            if step.event == nil && step.consumed == 0 { break }
        }
    }
    return (result, buffer)
}

let trailingRequest = Array("GET /next HTTP/1.1\r\nHost: next\r\n\r\n".utf8)

@Suite("HTTP fixture corpus")
struct FixtureCorpusTests {
    @Test("corpus is large enough")
    func corpusSize() {
        #expect(Fixture.load("invalid").count >= 60)
        #expect(Fixture.load("valid").count >= 30)
    }

    @Test("invalid requests are refused with their status", arguments: Fixture.load("invalid"))
    func invalid(_ f: Fixture) {
        let want = Int(f.expect["status"]![0])!
        for (label, input, piece) in [("whole", f.bytes, nil as Int?), ("byte by byte", f.bytes, 1),
                                      ("with trailing bytes", f.bytes + trailingRequest, nil)] {
            do {
                let (parsed, _) = try parseOne(input, piece: piece, limits: f.limits)
                Issue.record("\(label): accepted, expected \(want); head \(String(describing: parsed.head))")
            } catch {
                #expect(error.status == want, "\(label): \(error)")
            }
        }
    }

    @Test("valid requests parse to the expected head, body and trailers", arguments: Fixture.load("valid"))
    func valid(_ f: Fixture) throws {
        for (label, piece) in [("whole", nil as Int?), ("byte by byte", 1), ("7-byte pieces", 7)] {
            let (p, rest) = try parseOne(f.bytes + trailingRequest, piece: piece, limits: f.limits)
            #expect(rest == trailingRequest, "\(label): trailing bytes must stay unconsumed")
            let head = try #require(p.head, "\(label): no head")
            #expect(head.method == f.expect["method"]![0])
            #expect(head.target == f.expect["target"]![0])
            #expect("\(head.version.major).\(head.version.minor)" == f.expect["version"]![0])
            #expect(head.keepAlive == (f.expect["keep-alive"]![0] == "yes"), "\(label): keep-alive")
            #expect(head.expectContinue == (f.expect["expect-continue"]![0] == "yes"))
            let framing: String
            switch head.framing {
            case .none: framing = "none"
            case .chunked: framing = "chunked"
            case .contentLength(let n): framing = "length \(n)"
            }
            #expect(framing == f.expect["framing"]![0])
            let headers = head.headers.pairs.map { "\($0.name): \($0.value)" }
            #expect(headers == (f.expect["header"] ?? []), "\(label): headers")
            let trailers = (p.trailers ?? HTTPHeaders()).pairs.map { "\($0.name): \($0.value)" }
            #expect(trailers == (f.expect["trailer"] ?? []), "\(label): trailers")
            let hex = p.body.map { String(format: "%02x", $0) }.joined()
            #expect(hex == f.expect["body-hex"]![0], "\(label): body")

            // The bytes left over parse as the next request: pipelining works.
            let (next, left) = try parseOne(rest, piece: piece, limits: f.limits)
            #expect(next.head?.target == "/next")
            #expect(left.isEmpty)
        }
    }
}
