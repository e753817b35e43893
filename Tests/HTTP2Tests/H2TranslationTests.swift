import Testing
import HTTP2

@Suite struct H2TranslationTests {
    typealias F = H2Session.Field

    @Test("a stream's fields as an HTTP/1.1 request: Host from :authority, cookies joined, chunked without a length")
    func request() throws {
        let fields = [F(":method", "POST"), F(":scheme", "https"), F(":path", "/up?x=1"), F(":authority", "site.test"),
                      F("cookie", "a=1"), F("content-type", "text/plain"), F("cookie", "b=2"), F("te", "trailers")]
        let (head, chunked) = try #require(H2Translation.request(fields, body: true))
        #expect(chunked)
        #expect(String(decoding: head, as: UTF8.self) == "POST /up?x=1 HTTP/1.1\r\nHost: site.test\r\nCookie: a=1; b=2\r\n"
                + "content-type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        let sized = try #require(H2Translation.request(fields + [F("content-length", "5")], body: true))
        #expect(!sized.chunked)
        #expect(H2Translation.request([F(":method", "CONNECT"), F(":authority", "x:443")], body: false) == nil)
        var out: [UInt8] = []
        H2Translation.chunk(Array("hello".utf8), into: &out)
        #expect(out == Array("5\r\nhello\r\n".utf8))
    }

    @Test("responses read back: length, chunked in odd pieces, HEAD, 304, an interim 100, hop-by-hop fields dropped")
    func responses() {
        var r = H1ResponseReader(requestMethod: "GET")
        let text = Array("HTTP/1.1 200 OK\r\nServer: g\r\nContent-Length: 5\r\nConnection: close\r\nTransfer-Encoding: identity\r\n\r\nhello".utf8)
        #expect(r.receive(text[...]) == [.head(status: 200, fields: H2FieldBlock([F("server", "g"), F("content-length", "5")]), body: true),
                                         .body(Array("hello".utf8)), .end])

        var c = H1ResponseReader(requestMethod: "GET")
        let chunked = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n6\r\npedia!\r\n0\r\n\r\n".utf8)
        var got: [H1ResponseReader.Output] = []
        for i in stride(from: 0, to: chunked.count, by: 3) { got += c.receive(chunked[i..<min(i + 3, chunked.count)]) }
        #expect(got.first == .head(status: 404, fields: H2FieldBlock(), body: true))
        #expect(got.compactMap { if case .body(let b) = $0 { b } else { nil } }.joined().elementsEqual(Array("wikipedia!".utf8)))
        #expect(got.last == .end && c.done)

        var h = H1ResponseReader(requestMethod: "HEAD")
        #expect(h.receive(Array("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n".utf8)[...]) == [
            .head(status: 200, fields: H2FieldBlock([F("content-length", "99")]), body: false), .end])
        var n = H1ResponseReader(requestMethod: "GET")
        #expect(n.receive(Array("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".utf8)[...]) == [
            .head(status: 304, fields: H2FieldBlock([F("etag", "\"x\"")]), body: false), .end])
        var u = H1ResponseReader(requestMethod: "GET")
        #expect(u.receive(Array("HTTP/1.0 200 OK\r\n\r\nuntil close".utf8)[...]).count == 2)
        #expect(u.closed() == [.end])
    }
}
