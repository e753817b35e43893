import TOMLKit

/// Typed, path-aware access to a parsed TOML document. Each getter returns nil when the
/// key is absent, and also when it is wrong, after recording an issue with its line.
struct ConfigReader {
    let file: String
    let index: TOMLLineIndex
    /// Directory that relative paths in the file are resolved against.
    let base: String
    var issues: [ConfigIssue] = []

    mutating func fail(_ path: String, _ message: String) {
        issues.append(ConfigIssue(file: file, line: index.line(for: path), key: path, message: message))
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Records every key of `table` that is not in `allowed`, with a did-you-mean.
    mutating func rejectUnknownKeys(_ table: TOMLTable, path: String, allowed: [String]) {
        for key in table.keys where !allowed.contains(key) {
            let hint = DidYouMean.suggest(key, from: allowed).map { "; did you mean \"\($0)\"?" } ?? ""
            fail(Self.join(path, key), "unknown key\(hint)")
        }
    }

    func describe(_ v: TOMLValueConvertible) -> String {
        switch v.type {
        case .string: return "\"\(v.string ?? "")\""
        case .int: return String(v.int ?? 0)
        case .double: return String(v.double ?? 0)
        case .bool: return String(v.bool ?? false)
        case .array: return "an array"
        case .table: return "a table"
        default: return "a \(v.type)"
        }
    }

    mutating func int(_ t: TOMLTable, _ key: String, _ path: String, min: Int = 1, max: Int = Int.max) -> Int? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        let what = min == 1 ? "a positive integer" : (min == 0 ? "a non-negative integer" : "an integer >= \(min)")
        guard let n = v.int else { fail(p, "expected \(what), got \(describe(v))"); return nil }
        guard n >= min else { fail(p, "expected \(what), got \(n)"); return nil }
        guard n <= max else { fail(p, "must be at most \(max), got \(n)"); return nil }
        return n
    }

    mutating func string(_ t: TOMLTable, _ key: String, _ path: String, allowEmpty: Bool = false) -> String? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        guard let s = v.string else { fail(p, "expected a string, got \(describe(v))"); return nil }
        guard allowEmpty || !s.isEmpty else { fail(p, "must not be empty"); return nil }
        return s
    }

    mutating func choice<E: RawRepresentable & CaseIterable>(_ t: TOMLTable, _ key: String, _ path: String, _: E.Type) -> E? where E.RawValue == String {
        guard let s = string(t, key, path, allowEmpty: true) else { return nil }
        if let e = E(rawValue: s) { return e }
        let names = E.allCases.map(\.rawValue)
        let hint = DidYouMean.suggest(s, from: names).map { "; did you mean \"\($0)\"?" } ?? ""
        fail(Self.join(path, key), "expected one of \(names.joined(separator: ", ")), got \"\(s)\"\(hint)")
        return nil
    }

    /// Seconds, as a number or a string with a unit ("500ms", "30s", "5m").
    mutating func duration(_ t: TOMLTable, _ key: String, _ path: String, allowZero: Bool = false) -> Double? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        let seconds: Double?
        switch v.type {
        case .int: seconds = v.int.map(Double.init)
        case .double: seconds = v.double
        case .string: seconds = ConfigValues.parseDuration(v.string ?? "")
        default: seconds = nil
        }
        guard let s = seconds, s >= 0, s.isFinite else {
            fail(p, "expected a duration in seconds (30, 2.5, \"500ms\", \"5m\"), got \(describe(v))")
            return nil
        }
        guard allowZero || s > 0 else { fail(p, "must be greater than 0"); return nil }
        return s
    }

    /// Bytes, as an integer or a string with a unit ("64K", "100M", "1G").
    mutating func size(_ t: TOMLTable, _ key: String, _ path: String) -> UInt64? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        let bytes: UInt64?
        switch v.type {
        case .int: bytes = v.int.flatMap { $0 >= 0 ? UInt64($0) : nil }
        case .string: bytes = ConfigValues.parseSize(v.string ?? "")
        default: bytes = nil
        }
        guard let b = bytes, b > 0 else { fail(p, "expected a size in bytes (65536, \"64K\", \"100M\", \"1G\"), got \(describe(v))"); return nil }
        return b
    }

    mutating func stringArray(_ t: TOMLTable, _ key: String, _ path: String, allowSingle: Bool = false) -> [String]? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        if allowSingle, let s = v.string { return [s] }
        guard let a = v.array else { fail(p, "expected an array of strings, got \(describe(v))"); return nil }
        var out: [String] = []
        for (i, e) in a.enumerated() {
            guard let s = e.string else { fail(p, "element \(i + 1): expected a string, got \(describe(e))"); return nil }
            out.append(s)
        }
        return out
    }

    /// An inline table of string values (env).
    mutating func stringTable(_ t: TOMLTable, _ key: String, _ path: String) -> [String: String]? {
        guard let v = t[key] else { return nil }
        let p = Self.join(path, key)
        guard let table = v.table else { fail(p, "expected a table of strings, e.g. { NAME = \"value\" }, got \(describe(v))"); return nil }
        var out: [String: String] = [:]
        for k in table.keys {
            guard let s = table[k]?.string else { fail("\(p).\(k)", "expected a string, got \(describe(table[k]!))"); continue }
            guard isEnvName(k) else { fail("\(p).\(k)", "not a valid environment variable name"); continue }
            out[k] = s
        }
        return out
    }

    func isEnvName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || ("A"..."Z").contains(f) || ("a"..."z").contains(f) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// An absolute path, or one relative to the configuration file's directory.
    /// "." and ".." are resolved lexically, so messages and `check` show plain paths.
    func resolve(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for seg in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(seg)
        }
        return "/" + parts.joined(separator: "/")
    }
}
