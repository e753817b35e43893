/// Accept-Encoding (RFC 9110 §12.5.3), as far as a server that has gzip needs it.
public enum AcceptEncoding {
    /// Whether `value` lets the response be gzip-coded: "gzip" (or "x-gzip", or "*" when
    /// gzip is not named) with a q above 0.
    public static func allowsGzip(_ value: Substring) -> Bool {
        var star: Bool? = nil
        for item in value.split(separator: ",") {
            let parts = item.split(separator: ";")
            guard let first = parts.first else { continue }
            let coding = first.trimmingSpaces.lowercased()
            var q = 1.0
            for p in parts.dropFirst() {
                let kv = p.trimmingSpaces
                if kv.lowercased().hasPrefix("q=") { q = Double(kv.dropFirst(2)) ?? 0 }
            }
            if coding == "gzip" || coding == "x-gzip" { return q > 0 }
            if coding == "*" { star = q > 0 }
        }
        return star ?? false
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
