import Testing
@testable import Workers

/// Content-Type by extension: case-insensitive, the last dot wins, a leading dot or no
/// extension (or an unknown one) is application/octet-stream.
@Suite struct MediaTypesTests {
    @Test func extensionsMapCaseInsensitively() {
        #expect(MediaTypes.forFile("index.html") == "text/html; charset=utf-8")
        #expect(MediaTypes.forFile("INDEX.HTML") == "text/html; charset=utf-8")
        #expect(MediaTypes.forFile("photo.JpEg") == "image/jpeg")
        #expect(MediaTypes.forFile("site.webmanifest") == "application/manifest+json")  // longer than a packed word
        #expect(MediaTypes.forFile("SITE.WEBMANIFEST") == "application/manifest+json")
        #expect(MediaTypes.forFile("dump.tar.gz") == "application/gzip")
    }

    @Test func unknownOrMissingExtensionsAreOctetStream() {
        for name in ["README", ".bashrc", "data.bin", "a.", "x.htmlx", "x.ht", "caf\u{e9}.h\u{e9}ml"] {
            #expect(MediaTypes.forFile(Substring(name)) == "application/octet-stream", "\(name)")
        }
    }
}
