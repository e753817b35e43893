public struct HTTPVersion: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// How the request body is delimited (RFC 9112 §6.3).
public enum HTTPBodyFraming: Sendable, Equatable {
    case none
    case contentLength(UInt64)
    case chunked
}

/// A validated request head. Framing, keep-alive and Expect are already decided:
/// callers never re-read Content-Length or Transfer-Encoding themselves.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// The connection may carry another request after this one (version and Connection).
    public var keepAlive: Bool
    /// The client sent `Expect: 100-continue` and waits for a 100 before the body.
    public var expectContinue: Bool
    public var framing: HTTPBodyFraming
    /// The Host field value, if present (exactly one is allowed); for an absolute-form
    /// target, its authority instead (RFC 9112 §3.2.2).
    public var host: String?

    public init(method: String, target: String, version: HTTPVersion, headers: HTTPHeaders,
                keepAlive: Bool, expectContinue: Bool, framing: HTTPBodyFraming, host: String?) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.expectContinue = expectContinue
        self.framing = framing
        self.host = host
    }

    /// The target as an origin-form ("/x?y" of "http://h/x?y"): REQUEST_URI.
    public var originForm: Substring {
        guard let start = Self.authorityStart(target) else { return target[...] }
        let rest = target[start...]
        guard let start = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        return rest[start] == "?" ? Substring("/" + rest[start...]) : rest[start...]
    }

    /// The target was sent in absolute-form ("http://host/path").
    public var isAbsoluteForm: Bool { Self.authorityStart(target) != nil }

    /// Where the authority of "scheme://authority/path" starts; nil for other forms.
    /// (The parser has checked the scheme, so the first ":" ends it.)
    static func authorityStart(_ t: String) -> String.Index? {
        guard !t.hasPrefix("/"), let colon = t.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let rest = t.utf8[t.utf8.index(after: colon)...]
        guard rest.starts(with: "//".utf8) else { return nil }
        return t.utf8.index(colon, offsetBy: 3)
    }

    /// The target's path part (before `?`), still percent-encoded.
    public var path: Substring {
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) { return target[..<q] }
        return target[...]
    }

    /// The query part (after the first `?`), or "" when there is none.
    public var query: Substring {
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) { return target[target.utf8.index(after: q)...] }
        return ""
    }
}
