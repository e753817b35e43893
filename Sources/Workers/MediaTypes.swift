import HTTPWire

/// Content-Type by file extension, for static files: the types a site commonly serves
/// (nginx's mime.types, abridged). Text types carry charset=utf-8; anything unknown is
/// application/octet-stream, which browsers download rather than render.
enum MediaTypes {
    static let byExtension: KeyValuePairs<String, String> = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8",
        "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
        "txt": "text/plain; charset=utf-8", "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
        "xml": "application/xml", "json": "application/json", "map": "application/json",
        "webmanifest": "application/manifest+json", "wasm": "application/wasm",
        "pdf": "application/pdf", "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
        "avif": "image/avif", "svg": "image/svg+xml", "ico": "image/x-icon", "bmp": "image/bmp",
        "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
        "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "m4a": "audio/mp4",
        "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    ]

    /// Each extension packed, lowercase, into a word: a static response finds its type
    /// with a scan of integer compares (no lowercased copy, no hashing per request).
    static let packed: [(key: UInt64, type: String)] = byExtension.compactMap { e in pack(Substring(e.key)).map { ($0, e.value) } }

    /// Up to 8 bytes of ASCII, lowercased, in one word; nil for anything longer or not ASCII.
    static func pack(_ ext: Substring) -> UInt64? {
        guard ext.utf8.count <= 8 else { return nil }
        var key: UInt64 = 0
        for b in ext.utf8 {
            guard b < 0x80 else { return nil }
            key = key << 8 | UInt64(asciiLowercase(b))
        }
        return key
    }

    static func forFile(_ name: Substring) -> String {
        guard let dot = name.utf8.lastIndex(of: UInt8(ascii: ".")), dot != name.startIndex else { return "application/octet-stream" }
        let ext = name[name.utf8.index(after: dot)...]
        if let key = pack(ext) {
            for e in packed where e.key == key { return e.type }
        } else {
            for (e, type) in byExtension where e.utf8.count > 8 && ext.equalsLowercaseASCII(e) { return type }
        }
        return "application/octet-stream"
    }
}
