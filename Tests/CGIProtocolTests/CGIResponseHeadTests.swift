import Testing
@testable import CGIProtocol

/// Feeds `raw` whole or in pieces; returns the head and the body bytes after it.
func parseCGI(_ raw: String, piece: Int? = nil, max: Int = 65536) throws(CGIResponseError) -> (CGIResponseHead, String) {
    let bytes = Array(raw.utf8)
    var p = CGIResponseHeadParser(maxHeadSize: max)
    var buffer: [UInt8] = []
    var fed = 0
    while fed < bytes.count {
        let n = min(piece ?? bytes.count, bytes.count - fed)
        buffer += bytes[fed..<(fed + n)]
        fed += n
        let (consumed, head) = try p.parse(buffer[...])
        if let head {
            return (head, String(decoding: buffer[consumed...] + bytes[fed...], as: UTF8.self))
        }
        #expect(consumed == 0)
    }
    throw CGIResponseError("incomplete")
}

@Suite("CGI response head")
struct CGIResponseHeadTests {
    @Test(arguments: [nil, 1, 5] as [Int?])
    func documentWithCRLF(piece: Int?) throws {
        let (h, body) = try parseCGI("Content-Type: text/html\r\nX-A:  b \r\n\r\n<p>hi</p>", piece: piece)
        #expect(h.status == 200)
        #expect(h.kind == .document)
        #expect(h.contentType == "text/html")
        #expect(h.headers == [CGIHeaderField("Content-Type", "text/html"), CGIHeaderField("X-A", "b")])
        #expect(body == "<p>hi</p>")
    }

    @Test(arguments: [nil, 1] as [Int?])
    func lfLineEnds(piece: Int?) throws {
        let (h, body) = try parseCGI("Status: 404 Not Found\nContent-Type: text/plain\n\nmissing\n", piece: piece)
        #expect(h.status == 404)
        #expect(h.reason == "Not Found")
        #expect(h.headers.count == 1)
        #expect(body == "missing\n")
    }

    @Test func mixedLineEnds() throws {
        let (h, body) = try parseCGI("Status: 201\r\nContent-Type: a/b\n\r\nx")
        #expect(h.status == 201 && h.reason == nil && body == "x")
    }

    @Test func localRedirect() throws {
        let (h, _) = try parseCGI("Location: /other/page?x=1\r\n\r\n")
        #expect(h.kind == .localRedirect("/other/page?x=1"))
    }

    @Test("a head that only hands the response over needs no Content-Type; an empty one does")
    func handOverHeads() throws {
        for field in ["X-Accel-Redirect: /p/f", "x-sendfile: /srv/f", "X-LIGHTTPD-send-file: /srv/f"] {
            let (h, _) = try parseCGI(field + "\r\n\r\n")
            #expect(h.kind == .document && h.headers.count == 1)
        }
        #expect(throws: CGIResponseError.self) { try parseCGI("X-Accel-Redirect:\r\n\r\n") }
    }

    @Test func clientRedirectDefaultsTo302() throws {
        let (h, _) = try parseCGI("Location: https://example.com/x\r\n\r\n")
        #expect(h.kind == .clientRedirect("https://example.com/x"))
        #expect(h.status == 302)
        #expect(h.location == "https://example.com/x")
        let (n, _) = try parseCGI("Location: //cdn.example/x\r\n\r\n")
        #expect(n.kind == .clientRedirect("//cdn.example/x"))
    }

    @Test func statusWithLocalLocationIsADocument() throws {
        // PHP's header("Location: /x") arrives with "Status: 302 Found": send it as is.
        let (h, _) = try parseCGI("Status: 301 Moved Permanently\r\nLocation: /new\r\n\r\n")
        #expect(h.kind == .document && h.status == 301 && h.location == "/new")
        let (c, _) = try parseCGI("Status: 303 See Other\r\nLocation: http://a/b\r\n\r\n")
        #expect(c.status == 303)
    }

    @Test("bad heads are refused", arguments: [
        ("X-A: b\r\n\r\n", "none of"),
        ("\r\nbody", "no header fields"),
        ("Content-Type: text/html\r\nX-Evil: a\rSet-Cookie: x=1\r\n\r\n", "control byte"),
        ("Content-Type: text/html\r\nX-Evil: a\u{0}b\r\n\r\n", "control byte"),
        ("Content-Type: text/html\r\n folded\r\n\r\n", "continuation"),
        ("Content-Type text/html\r\n\r\n", "without a name"),
        ("Content Type: text/html\r\n\r\n", "invalid byte"),
        ("Status: abc\r\n\r\n", "invalid Status"),
        ("Status: 99\r\n\r\n", "invalid Status"),
        ("Status: 100 Continue\r\n\r\n", "invalid Status"),
        ("Status: 2000\r\n\r\n", "invalid Status"),
        ("Status: 200\r\nStatus: 404\r\n\r\n", "more than one Status"),
        ("Location: /a\r\nLocation: /b\r\n\r\n", "more than one Location"),
        (": x\r\nContent-Type: a\r\n\r\n", "without a name"),
    ])
    func refused(raw: String, message: String) {
        for piece in [nil, 1] as [Int?] {
            do {
                _ = try parseCGI(raw, piece: piece)
                Issue.record("accepted \(raw.debugDescription)")
            } catch {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }

    @Test func sizeLimit() {
        let big = "Content-Type: text/plain\r\nX-Pad: " + String(repeating: "p", count: 200) + "\r\n\r\n"
        #expect(throws: CGIResponseError.self) { try parseCGI(big, max: 128) }
        #expect(throws: CGIResponseError.self) { try parseCGI(big, piece: 1, max: 128) }
        #expect(throws: Never.self) { try parseCGI(big, max: 512) }
    }
}
