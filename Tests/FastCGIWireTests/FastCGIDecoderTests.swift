import Testing
@testable import FastCGIWire

struct Decoded: Equatable {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var end: FastCGIEvent?
    var management: [FastCGIEvent] = []
}

/// Feeds `input` in `piece`-byte pieces until END_REQUEST; returns what was decoded and the
/// bytes left in the buffer.
func decodeRequest(_ input: [UInt8], piece: Int? = nil, id: UInt16 = 1) throws(FastCGIError) -> (Decoded, [UInt8]) {
    var d = FastCGIDecoder(requestID: id)
    var buffer: [UInt8] = []
    var fed = 0
    var out = Decoded()
    while fed < input.count {
        let n = min(piece ?? input.count, input.count - fed)
        buffer += input[fed..<(fed + n)]
        fed += n
        while true {
            let s = try d.decode(buffer[...])
            switch s.event {
            case .stdout(let r): out.stdout += buffer[r]
            case .stderr(let r): out.stderr += buffer[r]
            case .endRequest?: out.end = s.event
            case .getValuesResult?, .unknownType?: out.management.append(s.event!)
            case nil: break
            }
            buffer.removeFirst(s.consumed)
            if case .endRequest? = s.event { return (out, buffer + input[fed...]) }
            if s.event == nil && s.consumed == 0 { break }
        }
    }
    return (out, buffer)
}

func endRequest(id: UInt16 = 1, app: UInt32 = 0, status: UInt8 = 0) -> [UInt8] {
    header(3, id: id, length: 8, padding: 0) + [UInt8(app >> 24), UInt8(app >> 16 & 0xFF), UInt8(app >> 8 & 0xFF), UInt8(app & 0xFF), status, 0, 0, 0]
}

@Suite("FastCGI decoder")
struct FastCGIDecoderTests {
    @Test("contentLength 65535 with paddingLength 255", arguments: [nil, 1, 4096] as [Int?])
    func maximalRecord(piece: Int?) throws {
        let content = (0..<65535).map { UInt8(truncatingIfNeeded: $0) }
        let input = header(6, length: 65535, padding: 255) + content + [UInt8](repeating: 0xEE, count: 255)
            + header(6, length: 0, padding: 0) + endRequest(app: 3)
        let (d, rest) = try decodeRequest(input, piece: piece)
        #expect(d.stdout == content)
        #expect(d.end == .endRequest(appStatus: 3, protocolStatus: .requestComplete))
        #expect(rest.isEmpty)
    }

    @Test("records of an earlier request id are skipped and counted, not taken as this request's", arguments: [nil, 1, 5] as [Int?])
    func strayRecordsOfAnEarlierRequest(piece: Int?) throws {
        let stray = header(6, id: 1, length: 8, padding: 3) + Array("CROSSED\n".utf8) + [0, 0, 0]
            + header(6, id: 1, length: 0, padding: 0) + endRequest(id: 1)
        let input = stray + header(6, id: 2, length: 3, padding: 0) + Array("ok\n".utf8) + endRequest(id: 2)
        let (d, rest) = try decodeRequest(input, piece: piece, id: 2)
        #expect(d.stdout == Array("ok\n".utf8))
        #expect(d.end == .endRequest(appStatus: 0, protocolStatus: .requestComplete))
        #expect(rest.isEmpty)
        var counted = FastCGIDecoder(requestID: 2)
        var buffer = input[...]
        while true {
            let s = try counted.decode(buffer)
            buffer = buffer.dropFirst(s.consumed)
            if case .endRequest? = s.event { break }
        }
        #expect(counted.strayRecords == 3)
    }

    @Test func stdoutAndStderrInterleaved() throws {
        let input = header(6, length: 3, padding: 5) + Array("abc".utf8) + [0, 0, 0, 0, 0]
            + header(7, length: 4, padding: 4) + Array("oops".utf8) + [0, 0, 0, 0]
            + header(6, length: 2, padding: 0) + Array("de".utf8)
            + header(7, length: 0, padding: 0) + header(6, length: 0, padding: 0)
            + endRequest(app: 0, status: 0)
        for piece in [nil, 1, 3] as [Int?] {
            let (d, _) = try decodeRequest(input, piece: piece)
            #expect(d.stdout == Array("abcde".utf8))
            #expect(d.stderr == Array("oops".utf8))
        }
    }

    @Test func bytesAfterEndRequestStayForTheNextRequest() throws {
        let next = header(6, id: 2, length: 1, padding: 7) + [0x41] + [UInt8](repeating: 0, count: 7)
        let (_, rest) = try decodeRequest(header(6, length: 0, padding: 0) + endRequest() + next)
        #expect(rest == next)
        // A kept connection: the same decoder continues with the next request id.
        var d = FastCGIDecoder(requestID: 1)
        var buf = endRequest() + next
        let s1 = try d.decode(buf[...]); buf.removeFirst(s1.consumed)
        let s2 = try d.decode(buf[...]); buf.removeFirst(s2.consumed)
        #expect(s2.event == .endRequest(appStatus: 0, protocolStatus: .requestComplete))
        d.startRequest(2)
        let s3 = try d.decode(buf[...]); buf.removeFirst(s3.consumed)
        let s4 = try d.decode(buf[...])
        #expect(s4.event == .stdout(0..<1))
    }

    @Test func protocolStatuses() throws {
        let (d, _) = try decodeRequest(endRequest(app: 0, status: 2))
        #expect(d.end == .endRequest(appStatus: 0, protocolStatus: .overloaded))
        let (d2, _) = try decodeRequest(endRequest(app: 0xFFFF_FFFF, status: 3))
        #expect(d2.end == .endRequest(appStatus: 0xFFFF_FFFF, protocolStatus: .unknownRole))
    }

    @Test func managementRecords() throws {
        var values: [UInt8] = []
        FastCGINameValue.append(name: "FCGI_MAX_CONNS", value: "10", into: &values)
        let pad = (8 - values.count % 8) % 8
        let input = header(10, id: 0, length: values.count, padding: pad) + values + [UInt8](repeating: 0, count: pad)
            + header(11, id: 0, length: 8, padding: 0) + [9, 0, 0, 0, 0, 0, 0, 0] + endRequest()
        let (d, _) = try decodeRequest(input, piece: 1)
        #expect(d.management == [.getValuesResult([FastCGIPair("FCGI_MAX_CONNS", "10")]), .unknownType(9)])
    }

    @Test("protocol violations are clear errors", arguments: [
        ("bad version", [2, 6, 0, 1, 0, 0, 0, 0] as [UInt8], "version"),
        ("unknown record type", [1, 12, 0, 1, 0, 0, 0, 0], "unknown record type 12"),
        ("type the app never sends", header(1, length: 8, padding: 0) + [0, 1, 0, 0, 0, 0, 0, 0], "not sent by applications"),
        ("STDIN from the app", header(5, length: 0, padding: 0), "not sent by applications"),
        ("record after END_REQUEST", endRequest() + header(6, length: 0, padding: 0), "after END_REQUEST"),
        ("END_REQUEST of wrong size", header(3, length: 4, padding: 4) + [0, 0, 0, 0, 0, 0, 0, 0], "expected 8"),
        ("management record with a request id", header(10, id: 1, length: 0, padding: 0), "management record"),
        ("stdout on the management id", header(6, id: 0, length: 0, padding: 0), "expected 1"),
        ("unknown protocol status", endRequest(status: 9), "protocol status 9"),
    ])
    func violations(name: String, input: [UInt8], message: String) {
        for piece in [nil, 1] as [Int?] {
            do {
                var d = FastCGIDecoder(requestID: 1)
                var buf: [UInt8] = []
                for chunk in stride(from: 0, to: input.count, by: piece ?? input.count) {
                    buf += input[chunk..<min(input.count, chunk + (piece ?? input.count))]
                    while true {
                        let s = try d.decode(buf[...])
                        buf.removeFirst(s.consumed)
                        if s.event == nil && s.consumed == 0 { break }
                    }
                }
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.message.contains(message), "\(name): \(error.message)")
            }
        }
    }
}

import CGIProtocol

@Suite("FastCGI STDOUT into the CGI head parser")
struct FastCGIStdoutHeadTests {
    /// PHP and libfcgi may flush mid-header: the head is parsed from the STDOUT stream,
    /// never from a single record.
    @Test(arguments: [nil, 1, 3] as [Int?])
    func headSplitAcrossTwoRecords(piece: Int?) throws {
        let part1 = Array("Status: 201 Created\r\nContent-Ty".utf8)
        let part2 = Array("pe: text/plain\r\n\r\nbody".utf8)
        func record(_ c: [UInt8]) -> [UInt8] {
            let pad = (8 - c.count % 8) % 8
            return header(6, length: c.count, padding: pad) + c + [UInt8](repeating: 0, count: pad)
        }
        let input = record(part1) + record(part2) + header(6, length: 0, padding: 0) + endRequest()
        let (d, _) = try decodeRequest(input, piece: piece)
        var parser = CGIResponseHeadParser()
        // Feed the STDOUT stream as the records delivered it: first record alone is not enough.
        let (c1, h1) = try parser.parse(d.stdout[0..<part1.count])
        #expect(c1 == 0 && h1 == nil)
        let (consumed, head) = try parser.parse(d.stdout[...])
        let h = try #require(head)
        #expect(h.status == 201)
        #expect(h.contentType == "text/plain")
        #expect(Array(d.stdout[consumed...]) == Array("body".utf8))
    }
}

@Suite("FastCGI decoder regressions")
struct FastCGIDecoderRegressionTests {
    /// Fuzzer find: END_REQUEST with padding, then the next request on the same connection.
    @Test func nextRequestWhileEndRequestPaddingIsPending() throws {
        var d = FastCGIDecoder(requestID: 1)
        var buf = header(3, length: 8, padding: 16) + [0, 0, 0, 0, 0, 0, 0, 0]
        let s1 = try d.decode(buf[...]); buf.removeFirst(s1.consumed)
        let s2 = try d.decode(buf[...]); buf.removeFirst(s2.consumed)
        #expect(s2.event == .endRequest(appStatus: 0, protocolStatus: .requestComplete))
        d.startRequest(2)
        buf += [UInt8](repeating: 0, count: 16) + header(6, id: 2, length: 1, padding: 0) + [0x41]
        var out: [UInt8] = []
        while true {
            let s = try d.decode(buf[...])
            if case .stdout(let r)? = s.event { out += buf[r] }
            buf.removeFirst(s.consumed)
            if s.event == nil && s.consumed == 0 { break }
        }
        #expect(out == [0x41])
    }
}
