import Testing
@testable import GatewaySystem
import HTTPWire
@testable import Workers

/// A static file's response decided without a socket or a disk: status, head and the
/// byte range to send, for plain GETs, HEAD, conditional requests and ranges.
@Suite("static responses")
struct StaticResponseTests {
    // 1,000 bytes, modified at RFC 9110's example time.
    static let modified: Int64 = 784_111_777
    static let file = StaticFile(file: OpenFile(FileDescriptor(-1)), status: OpenFileStatus(kind: .regular, size: 1000, modified: modified), name: "a.css")
    static let etag = FileValidators(modified: modified, size: 1000).etag

    static func respond(_ method: String = "GET", _ headers: [(String, String)] = [], minor: Int = 1, keepAlive: Bool = true) -> (StaticResponse, String) {
        let request = HTTPRequestHead(method: method, target: "/a.css", version: HTTPVersion(major: 1, minor: minor),
                                      headers: HTTPHeaders(headers), keepAlive: keepAlive, expectContinue: false, framing: .none, host: "h")
        let r = StaticResponse.make(request: request, file: file, keepAlive: keepAlive, date: "D")
        return (r, String(decoding: r.head, as: UTF8.self))
    }

    @Test("GET: 200 with the validators and the whole file; HEAD: the same head, no body")
    func whole() {
        let (r, head) = Self.respond()
        #expect(r.status == 200 && r.body?.offset == 0 && r.body?.length == 1000)
        #expect(head == "HTTP/1.1 200 OK\r\nDate: D\r\nServer: \(WorkerContext.software)\r\nContent-Type: text/css; charset=utf-8\r\n"
            + "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nETag: \(Self.etag)\r\nAccept-Ranges: bytes\r\nContent-Length: 1000\r\n\r\n")
        let (h, headOfHead) = Self.respond("HEAD")
        #expect(h.status == 200 && h.body == nil && headOfHead == head)
        #expect(Self.respond(keepAlive: false).1.hasSuffix("Content-Length: 1000\r\nConnection: close\r\n\r\n"))
        #expect(Self.respond(minor: 0).1.hasSuffix("Content-Length: 1000\r\nConnection: keep-alive\r\n\r\n"))
    }

    @Test("304 for a matching tag or a date not older, with the validators and no body; 412 for If-Match")
    func conditional() {
        for headers in [[("If-None-Match", Self.etag)], [("If-None-Match", "\"x\", W/\(Self.etag)")], [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]] {
            let (r, head) = Self.respond("GET", headers)
            #expect(r.status == 304 && r.body == nil, "\(headers)")
            #expect(head.hasPrefix("HTTP/1.1 304 Not Modified\r\n") && head.contains("ETag: \(Self.etag)\r\n") && !head.contains("Content-Length"))
        }
        #expect(Self.respond("GET", [("If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT")]).0.status == 200, "changed since")
        #expect(Self.respond("GET", [("If-Match", "\"other\"")]).0.status == 412)
        #expect(Self.respond("GET", [("If-Match", Self.etag)]).0.status == 200)
    }

    @Test("ranges: 206 with Content-Range, suffix and open forms, 416 past the end, If-Range that no longer matches")
    func ranges() {
        let (r, head) = Self.respond("GET", [("Range", "bytes=0-9")])
        #expect(r.status == 206 && r.body?.offset == 0 && r.body?.length == 10)
        #expect(head.contains("Content-Range: bytes 0-9/1000\r\n") && head.contains("Content-Length: 10\r\n"))
        let (s, suffix) = Self.respond("GET", [("Range", "bytes=-5")])
        #expect(s.status == 206 && s.body?.offset == 995 && suffix.contains("Content-Range: bytes 995-999/1000\r\n"))
        let (o, open) = Self.respond("GET", [("Range", "bytes=990-")])
        #expect(o.body?.offset == 990 && o.body?.length == 10 && open.contains("Content-Range: bytes 990-999/1000\r\n"))
        let (u, unsatisfiable) = Self.respond("GET", [("Range", "bytes=1000-")])
        #expect(u.status == 416 && u.body == nil && unsatisfiable.contains("Content-Range: bytes */1000\r\n"))
        #expect(Self.respond("GET", [("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]).0.status == 200)
        #expect(Self.respond("GET", [("Range", "bytes=0-9"), ("If-Range", Self.etag)]).0.status == 206)
        #expect(Self.respond("HEAD", [("Range", "bytes=0-9")]).0.status == 200, "Range is for GET only")
    }
}
