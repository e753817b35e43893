import FastCGIWire
import Testing
@testable import Exchanges

/// The active health probe's bytes and verdicts, without a socket.
@Suite struct HealthProbeTests {
    static func record(_ type: FastCGIRecordType, id: UInt16, _ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        content.withUnsafeBytes { FastCGIEncoder.appendRecord(type, requestID: id, content: $0, into: &out) }
        return out
    }

    static func end(_ status: UInt8 = 0) -> [UInt8] { record(.endRequest, id: 1, [0, 0, 0, 0, status, 0, 0, 0]) }

    @Test("FCGI_GET_VALUES: the query asks for the three values; the answer gives the capacity, fed in any pieces")
    func getValues() throws {
        var p = HealthProbe(.getValues)
        let request = p.request(serverName: "x")
        #expect(request[1] == FastCGIRecordType.getValues.rawValue)
        #expect(String(decoding: request, as: UTF8.self).contains("FCGI_MAX_CONNS"))
        var pairs: [UInt8] = []
        FastCGINameValue.append(name: "FCGI_MAX_CONNS", value: "10", into: &pairs)
        FastCGINameValue.append(name: "FCGI_MAX_REQS", value: "4", into: &pairs)
        FastCGINameValue.append(name: "FCGI_MPXS_CONNS", value: "0", into: &pairs)
        let answer = Self.record(.getValuesResult, id: 0, pairs)
        #expect(p.feed(Array(answer[..<5]), atEnd: false) == nil)
        // The verdict comes with the content; the padding (flup sends it apart) after.
        let padding = Int(answer[6])
        #expect(padding > 0)
        #expect(p.feed(Array(answer[5..<(answer.count - padding)]), atEnd: false) == .up(capacity: 4))
        #expect(!p.answerComplete)
        p.skip(Array(answer[(answer.count - padding)...]))
        #expect(p.answerComplete)
        // An empty answer (libfcgi, flup as shipped, php-fpm): alive, capacity unknown.
        var q = HealthProbe(.getValues)
        #expect(q.feed(Self.record(.getValuesResult, id: 0, []), atEnd: false) == .up(capacity: nil))
        // Verdict and padding in one read: complete once what came with it is read.
        var whole = HealthProbe(.getValues)
        #expect(whole.feed(answer, atEnd: false) == .up(capacity: 4))
        whole.skip([])
        #expect(whole.answerComplete)
        var r = HealthProbe(.getValues)
        #expect(r.feed([], atEnd: true) == .failed("closed the connection before answering"))
        var notFastCGI = HealthProbe(.getValues)
        if case .failed = notFastCGI.feed(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8), atEnd: false) {} else { Issue.record("HTTP taken for FastCGI") }
    }

    @Test("health_path: a GET with the path's script and query; below 400 is up, 400 and above failed")
    func request() throws {
        let p = HealthProbe(.request(path: "/health?deep=1", root: "/srv"))
        let text = String(decoding: p.request(serverName: "10.0.0.5"), as: UTF8.self)
        for s in ["REQUEST_METHOD", "GET", "SCRIPT_NAME", "/health", "QUERY_STRING", "deep=1", "SCRIPT_FILENAME", "/srv/health"] {
            #expect(text.contains(s), "\(s)")
        }
        func verdict(_ head: String, _ status: UInt8 = 0) -> HealthProbe.Verdict? {
            var probe = HealthProbe(.request(path: "/health", root: nil))
            return probe.feed(Self.record(.stdout, id: 1, Array(head.utf8)) + Self.end(status), atEnd: false)
        }
        #expect(verdict("Content-Type: text/plain\r\n\r\nok") == .up(capacity: nil))
        #expect(verdict("Status: 302 Found\r\nLocation: /x\r\n\r\n") == .up(capacity: nil))
        #expect(verdict("Status: 503 Service Unavailable\r\n\r\n") == .failed("answered 503"))
        #expect(verdict("") == .failed("ended the request without a response head"))
        #expect(verdict("Content-Type: text/plain\r\n\r\n", 2) == .failed("ended the request with overloaded"))
        // The head split over records, the answer over reads.
        var split = HealthProbe(.request(path: "/health", root: nil))
        let bytes = Self.record(.stdout, id: 1, Array("Status: 5".utf8)) + Self.record(.stdout, id: 1, Array("00 x\r\n\r\n".utf8)) + Self.end()
        #expect(split.feed(Array(bytes[..<20]), atEnd: false) == nil)
        #expect(split.feed(Array(bytes[20...]), atEnd: false) == .failed("answered 500"))
    }
}
