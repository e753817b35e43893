/// Where each key of a TOML document is written, so validation errors can say
/// `file:line`. TOMLKit reports positions only for syntax errors; this small scanner
/// walks the same text (already known to be valid TOML) and records the line of every
/// table header and key. Paths look like `server.workers`, `app[1].name`,
/// `route[0].env.GIT_PROJECT_ROOT` (arrays of tables are indexed from 0).
struct TOMLLineIndex {
    private(set) var lines: [String: Int] = [:]

    init(text: String) {
        var scanner = Scanner(chars: Array(text.unicodeScalars))
        scanner.run()
        lines = scanner.lines
    }

    /// The line of `path`, or of its nearest enclosing key or table.
    func line(for path: String) -> Int? {
        var p = Substring(path)
        while !p.isEmpty {
            if let l = lines[String(p)] { return l }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            p = p[..<cut]
        }
        return nil
    }

    private struct Scanner {
        let chars: [Unicode.Scalar]
        var i = 0
        var line = 1
        var lines: [String: Int] = [:]
        var table = ""                       // current [table] or [[array]] path
        var arrayCounts: [String: Int] = [:] // [[name]] occurrences

        init(chars: [Unicode.Scalar]) { self.chars = chars }

        var atEnd: Bool { i >= chars.count }
        var c: Unicode.Scalar { chars[i] }

        mutating func advance() {
            if chars[i] == "\n" { line += 1 }
            i += 1
        }

        mutating func skipSpaceAndComments() {
            while !atEnd {
                if c == " " || c == "\t" || c == "\r" || c == "\n" { advance() }
                else if c == "#" { while !atEnd && c != "\n" { advance() } }
                else { break }
            }
        }

        mutating func run() {
            while true {
                skipSpaceAndComments()
                if atEnd { return }
                if c == "[" { header() } else { keyValue(prefix: table) }
            }
        }

        mutating func header() {
            let l = line
            advance()
            let isArray = !atEnd && c == "["
            if isArray { advance() }
            let name = key().joined(separator: ".")
            while !atEnd && c != "\n" { advance() }
            if isArray {
                let n = arrayCounts[name, default: 0]
                arrayCounts[name] = n + 1
                table = "\(name)[\(n)]"
            } else {
                table = name
            }
            lines[table] = l
        }

        /// A possibly dotted key of bare and quoted parts; stops before "=" or "]".
        mutating func key() -> [String] {
            var parts: [String] = []
            var current = ""
            while !atEnd {
                if c == " " || c == "\t" { advance(); continue }
                if c == "\"" || c == "'" { current += quoted(); continue }
                if c == "." { parts.append(current); current = ""; advance(); continue }
                if c == "=" || c == "]" || c == "\n" { break }
                current.unicodeScalars.append(c)
                advance()
            }
            parts.append(current)
            return parts
        }

        mutating func quoted() -> String {
            let q = c
            advance()
            var s = ""
            while !atEnd && c != q && c != "\n" {
                if q == "\"" && c == "\\" { advance(); if atEnd { break } }
                s.unicodeScalars.append(c)
                advance()
            }
            if !atEnd && c == q { advance() }
            return s
        }

        mutating func keyValue(prefix: String) {
            let l = line
            let k = key().joined(separator: ".")
            let path = prefix.isEmpty ? k : "\(prefix).\(k)"
            lines[path] = l
            if !atEnd && c == "=" { advance() }
            value(path: path)
        }

        /// Skips one value, recording keys inside inline tables.
        mutating func value(path: String) {
            while !atEnd && (c == " " || c == "\t") { advance() }
            guard !atEnd else { return }
            switch c {
            case "\"", "'":
                if matches(c, 3) { multiline(c) } else { _ = quoted() }
            case "[":
                advance()
                while true {
                    skipSpaceAndComments()
                    if atEnd { return }
                    if c == "]" { advance(); return }
                    if c == "," { advance(); continue }
                    value(path: path)
                }
            case "{":
                advance()
                while true {
                    while !atEnd && (c == " " || c == "\t") { advance() }
                    if atEnd { return }
                    if c == "}" { advance(); return }
                    if c == "," { advance(); continue }
                    keyValue(prefix: path)
                }
            default:
                while !atEnd && c != "," && c != "]" && c != "}" && c != "\n" && c != "#" { advance() }
            }
        }

        func matches(_ q: Unicode.Scalar, _ n: Int) -> Bool {
            guard i + n <= chars.count else { return false }
            return (0..<n).allSatisfy { chars[i + $0] == q }
        }

        mutating func multiline(_ q: Unicode.Scalar) {
            for _ in 0..<3 { advance() }
            while !atEnd {
                if q == "\"" && c == "\\" { advance(); if !atEnd { advance() }; continue }
                if matches(q, 3) {
                    for _ in 0..<3 { advance() }
                    while !atEnd && c == q { advance() }  // up to two quotes may end the content
                    return
                }
                advance()
            }
        }
    }
}
