/// On-the-fly gzip of responses (nginx's gzip module): which responses a route
/// compresses, for which clients. The bytes themselves are ContentCoding's.
public struct GzipPolicy: Sendable, Equatable {
    /// Media types to compress, lowercased, without parameters; "*" is any type.
    /// text/html is always among them, as in nginx.
    public var types: [String]
    /// A response whose Content-Length says fewer bytes is sent as it is.
    public var minLength: UInt64
    /// zlib's level, 1 (fastest) to 9.
    public var level: Int

    /// nginx's defaults: gzip_types text/html, gzip_min_length 20, gzip_comp_level 1.
    public init(types: [String] = ["text/html"], minLength: UInt64 = 20, level: Int = 1) {
        self.types = types.map { $0.lowercased() }
        if !self.types.contains("text/html") { self.types.append("text/html") }
        self.minLength = minLength
        self.level = level
    }

    /// Whether the client takes a gzip body: HTTP/1.1 or later (nginx's gzip_http_version)
    /// and an Accept-Encoding that allows gzip.
    public static func clientAccepts(_ head: HTTPRequestHead) -> Bool {
        guard head.version.major > 1 || head.version.minor >= 1, let accept = head.headers.first("Accept-Encoding") else { return false }
        return AcceptEncoding.allowsGzip(Substring(accept))
    }

    /// Whether a response of this kind is one the route compresses (for clients that
    /// accept gzip; every such response says Vary: Accept-Encoding, whoever asked):
    /// 200, 403 or 404 as nginx (never a 206), a listed type, not already coded, not
    /// marked no-transform (RFC 9111 §5.2.2.6), and not known to be shorter than
    /// `minLength`.
    public func covers(status: Int, contentType: Substring?, contentEncoding: Substring?, cacheControl: Substring?,
                       contentLength: UInt64?) -> Bool {
        guard status == 200 || status == 403 || status == 404 else { return false }
        if let e = contentEncoding, !e.allSatisfy({ $0 == " " || $0 == "\t" }), e.lowercased() != "identity" { return false }
        if let cc = cacheControl, cc.lowercased().contains("no-transform") { return false }
        if let n = contentLength, n < minLength { return false }
        return typeListed(contentType)
    }

    func typeListed(_ contentType: Substring?) -> Bool {
        if types.contains("*") { return true }
        guard let ct = contentType else { return false }
        let bare = (ct.split(separator: ";", maxSplits: 1).first ?? "").trimmingSpaces.lowercased()
        return types.contains(bare)
    }

    /// A strong entity tag made weak (W/"..."): the coded bytes are not the ones the tag
    /// named, but they mean the same (nginx does the same).
    public static func weakened(_ etag: Substring) -> Substring {
        etag.hasPrefix("W/") || !etag.hasPrefix("\"") ? etag : Substring("W/" + etag)
    }
}

/// A route's gzip setting as it applies to one request: nil on the request when its
/// route does not compress.
public struct GzipChoice: Sendable, Equatable {
    public let policy: GzipPolicy
    /// The client takes gzip (else the answers only say Vary).
    public let accepted: Bool

    public init(policy: GzipPolicy, accepted: Bool) {
        self.policy = policy
        self.accepted = accepted
    }

    /// What to do with one response: `vary` adds Vary: Accept-Encoding, `compress` codes it.
    public func decide(status: Int, contentType: Substring?, contentEncoding: Substring?, cacheControl: Substring?,
                       contentLength: UInt64?) -> (vary: Bool, compress: Bool) {
        let covered = policy.covers(status: status, contentType: contentType, contentEncoding: contentEncoding,
                                    cacheControl: cacheControl, contentLength: contentLength)
        return (covered, covered && accepted)
    }
}
