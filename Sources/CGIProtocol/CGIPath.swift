/// Request paths as CGI and routing see them: percent-decoded, normalised, split into
/// SCRIPT_NAME and PATH_INFO. Pure functions; the filesystem is asked through closures.
public enum CGIPath {
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
        init(_ m: String) { message = m }
    }

    /// Decodes %XX escapes. Refuses malformed escapes and decoded NUL, CR or LF, which no
    /// path needs and which would corrupt a meta-variable or a file name.
    public static func percentDecode(_ s: Substring) throws(Error) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            var c = b
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let h = hex(it[it.startIndex]), let l = hex(it[it.startIndex + 1]) else {
                    throw Error("malformed percent-escape in path")
                }
                c = h << 4 | l
                it = it.dropFirst(2)
            }
            guard c != 0, c != 0x0D, c != 0x0A else { throw Error("NUL, CR or LF in path") }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-encodes a decoded path for a Location field: unreserved characters, "/"
    /// and the sub-delims RFC 3986 allows in a path stay; everything else (space, "%",
    /// "?", "#", "\\", controls, non-ASCII bytes) becomes %XX.
    public static func percentEncodePath(_ path: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count)
        let hexDigits = Array("0123456789ABCDEF".utf8)
        for b in path.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"),
                 UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
                 UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Removes "." segments and empty segments (merged slashes) and applies "..".
    /// A ".." above the root is refused rather than clamped: it is an attack, not a typo.
    /// A trailing slash is kept; the result always starts with "/".
    public static func normalize(_ decoded: String) throws(Error) -> String {
        guard decoded.hasPrefix("/") else { throw Error("path does not start with /") }
        var segments: [Substring] = []
        let parts = decoded.split(separator: "/", omittingEmptySubsequences: false)
        for seg in parts {
            switch seg {
            case "", ".":
                continue
            case "..":
                guard !segments.isEmpty else { throw Error("path climbs above the root") }
                segments.removeLast()
            default:
                segments.append(seg)
            }
        }
        let trailing = decoded.hasSuffix("/") || decoded.hasSuffix("/.") || decoded.hasSuffix("/..")
        var result = "/" + segments.joined(separator: "/")
        if trailing && result != "/" { result += "/" }
        return result
    }

    /// Decodes and normalises the path part of a request target.
    public static func clean(_ rawPath: Substring) throws(Error) -> String {
        if isAlreadyClean(rawPath) { return String(rawPath) }
        return try normalize(percentDecode(rawPath))
    }

    /// The common case, checked in one pass: starts with "/", no escapes, no empty, "."
    /// or ".." segments. Such a path is its own clean form.
    static func isAlreadyClean(_ path: Substring) -> Bool {
        var previous: UInt8 = 0
        var first = true
        for b in path.utf8 {
            if first {
                guard b == UInt8(ascii: "/") else { return false }
                first = false
            } else if b == UInt8(ascii: "%") || (previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: "."))) {
                return false
            }
            guard b != 0, b != 0x0D, b != 0x0A else { return false }
            previous = b
        }
        return !first
    }

    /// Splits after the first segment ending in `ext` (".php"): "/a/b.php/c" ->
    /// ("/a/b.php", "/c"). Nil when no segment ends in it. Only whole segments count, so
    /// "/x.php.jpg" does not match and "/a.jpg/x.php" yields the script "/a.jpg/x.php"
    /// (the caller must then check it is a regular file).
    public static func splitAtExtension(_ path: String, _ ext: String) -> (scriptName: String, pathInfo: String)? {
        var index = path.startIndex
        while index < path.endIndex {
            let segEnd = path[index...].dropFirst().firstIndex(of: "/") ?? path.endIndex
            let segment = path[index..<segEnd]
            if segment.dropFirst().count > ext.count, segment.hasSuffix(ext) {
                return (String(path[..<segEnd]), String(path[segEnd...]))
            }
            index = segEnd
        }
        return nil
    }

    /// Whether `path` lies under the mount `prefix` at a segment boundary ("/api" covers
    /// "/api" and "/api/x", not "/apix").
    public static func isUnder(_ path: String, prefix: String) -> Bool { mountLength(path, prefix) != nil }

    /// WSGI-style mount: SCRIPT_NAME is the prefix, PATH_INFO the rest ("/" mounts give "").
    public static func splitAtMount(_ path: String, prefix: String) -> (scriptName: String, pathInfo: String)? {
        guard let n = mountLength(path, prefix) else { return nil }
        return (String(Substring(prefix.utf8.prefix(n))), String(Substring(path.utf8.dropFirst(n))))
    }

    /// The length in bytes of `prefix` without its trailing "/" when `path` lies under it.
    /// (Compared as bytes: every routed request asks this of several routes, and the
    /// Character-wise hasPrefix, dropLast and dropFirst it replaced showed in profiles.)
    static func mountLength(_ path: String, _ prefix: String) -> Int? {
        let u = path.utf8, pu = prefix.utf8
        var n = pu.count
        if n > 0 && pu.last == UInt8(ascii: "/") { n -= 1 }
        if n == 0 { return 0 }
        guard u.count >= n, u.prefix(n).elementsEqual(pu.prefix(n)) else { return nil }
        return u.count == n || u[u.index(u.startIndex, offsetBy: n)] == UInt8(ascii: "/") ? n : nil
    }

    /// CGI directory mapping: walks the segments below `prefix` and stops at the first
    /// one `isScript` accepts (an executable regular file). "/cgi-bin/env.sh/x/y" with
    /// env.sh executable -> ("/cgi-bin/env.sh", "/x/y").
    public static func splitAtScript(_ path: String, prefix: String, isScript: (String) -> Bool) -> (scriptName: String, pathInfo: String)? {
        guard let (mount, rest) = splitAtMount(path, prefix: prefix) else { return nil }
        var scriptName = mount
        var remaining = Substring(rest)
        while remaining.hasPrefix("/") {
            let segEnd = remaining.dropFirst().firstIndex(of: "/") ?? remaining.endIndex
            let segment = remaining[remaining.startIndex..<segEnd]
            guard segment.count > 1 else { return nil }
            scriptName += segment
            remaining = remaining[segEnd...]
            if isScript(scriptName) { return (scriptName, String(remaining)) }
        }
        return nil
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
