import Testing
@testable import HTTPWire

@Suite struct ResponseCompressionTests {
    func head(_ version: HTTPVersion, _ accept: String?) -> HTTPRequestHead {
        HTTPRequestHead(method: "GET", target: "/", version: version,
                        headers: HTTPHeaders(accept.map { [("Accept-Encoding", $0)] } ?? []), keepAlive: true, expectContinue: false, framing: .none, host: nil)
    }

    @Test("nginx's defaults: text/html only, 20 bytes, level 1; listed types and * match")
    func defaults() {
        let p = GzipPolicy()
        #expect(p.types == ["text/html"] && p.minLength == 20 && p.level == 1)
        #expect(p.covers(status: 200, contentType: "text/html; charset=utf-8", contentEncoding: nil, cacheControl: nil, contentLength: nil))
        #expect(!p.covers(status: 200, contentType: "application/json", contentEncoding: nil, cacheControl: nil, contentLength: nil))
        #expect(!p.covers(status: 200, contentType: nil, contentEncoding: nil, cacheControl: nil, contentLength: nil))
        let json = GzipPolicy(types: ["Application/JSON"])
        #expect(json.types.contains("text/html"))
        #expect(json.covers(status: 200, contentType: "application/json", contentEncoding: nil, cacheControl: nil, contentLength: 100))
        #expect(GzipPolicy(types: ["*"]).covers(status: 200, contentType: "image/x-anything", contentEncoding: nil, cacheControl: nil, contentLength: nil))
    }

    @Test("never: a 206 or other status, a coded body, no-transform, a body below the minimum")
    func refusals() {
        let p = GzipPolicy()
        func covers(_ status: Int = 200, ce: Substring? = nil, cc: Substring? = nil, length: UInt64? = nil) -> Bool {
            p.covers(status: status, contentType: "text/html", contentEncoding: ce, cacheControl: cc, contentLength: length)
        }
        #expect(covers(403) && covers(404))
        #expect(!covers(206) && !covers(304) && !covers(500) && !covers(301))
        #expect(!covers(ce: "gzip") && !covers(ce: "br") && covers(ce: "identity") && covers(ce: ""))
        #expect(!covers(cc: "public, No-Transform") && covers(cc: "max-age=60"))
        #expect(!covers(length: 19) && covers(length: 20) && covers(length: nil))
    }

    @Test("the client: HTTP/1.1 with gzip allowed; Vary is said to all, gzip only to those")
    func clients() {
        #expect(GzipPolicy.clientAccepts(head(.http1_1, "gzip, deflate, br")))
        #expect(!GzipPolicy.clientAccepts(head(.http1_1, "gzip;q=0")))
        #expect(!GzipPolicy.clientAccepts(head(.http1_1, nil)))
        #expect(!GzipPolicy.clientAccepts(head(.http1_0, "gzip")))
        let no = GzipChoice(policy: GzipPolicy(), accepted: false), yes = GzipChoice(policy: GzipPolicy(), accepted: true)
        #expect(no.decide(status: 200, contentType: "text/html", contentEncoding: nil, cacheControl: nil, contentLength: nil) == (true, false))
        #expect(yes.decide(status: 200, contentType: "text/html", contentEncoding: nil, cacheControl: nil, contentLength: nil) == (true, true))
        #expect(yes.decide(status: 206, contentType: "text/html", contentEncoding: nil, cacheControl: nil, contentLength: nil) == (false, false))
        #expect(GzipPolicy.weakened("\"abc\"") == "W/\"abc\"" && GzipPolicy.weakened("W/\"abc\"") == "W/\"abc\"")
    }
}
