import HTTPWire

/// Everything besides the request head that the meta-variables need.
public struct CGIRequestContext: Sendable {
    /// SCRIPT_NAME and PATH_INFO, decoded (see `CGIPath`).
    public var scriptName: String
    public var pathInfo: String
    /// DOCUMENT_ROOT, and SCRIPT_FILENAME = the file that runs (PHP needs both).
    public var documentRoot: String?
    public var scriptFilename: String?
    /// Length of the body the app will read: from Content-Length, or counted after
    /// de-chunking. Nil when the request has no body.
    public var contentLength: UInt64?
    public var remoteAddress: String
    public var remotePort: Int
    public var serverName: String
    public var serverPort: Int
    public var serverAddress: String?
    public var https: Bool
    public var serverSoftware: String
    /// Variables the route adds (`env` in gateway.toml), e.g. GIT_PROJECT_ROOT.
    public var extra: [(String, String)]
    /// SERVER_PROTOCOL when it is not the request head's (an HTTP/2 stream, read as
    /// HTTP/1.1 by the engine, says HTTP/2.0 as nginx does).
    public var serverProtocol: String? = nil

    public init(scriptName: String, pathInfo: String, documentRoot: String? = nil, scriptFilename: String? = nil,
                contentLength: UInt64? = nil, remoteAddress: String, remotePort: Int, serverName: String,
                serverPort: Int, serverAddress: String? = nil, https: Bool = false,
                serverSoftware: String = "gatewayd", extra: [(String, String)] = []) {
        self.scriptName = scriptName
        self.pathInfo = pathInfo
        self.documentRoot = documentRoot
        self.scriptFilename = scriptFilename
        self.contentLength = contentLength
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.serverName = serverName
        self.serverPort = serverPort
        self.serverAddress = serverAddress
        self.https = https
        self.serverSoftware = serverSoftware
        self.extra = extra
    }
}

/// RFC 3875 §4.1 meta-variables, plus what PHP and WSGI apps expect, in a fixed order.
///
/// Safety rules: the server's own variables are set first and nothing overrides them;
/// route `env` comes next; HTTP_* from headers last. A header whose name holds anything
/// but letters, digits and "-" is dropped, so "X_Forwarded_For" cannot pose as
/// "X-Forwarded-For" (as nginx and Apache do). `Proxy` never becomes HTTP_PROXY
/// (httpoxy). Content-Length and Content-Type become CONTENT_* from the framing only.
public enum CGIEnvironment {
    public static func build(head: HTTPRequestHead, context c: CGIRequestContext) -> [(name: String, value: String)] {
        var vars: [(name: String, value: String)] = []
        vars.reserveCapacity(24 + c.extra.count + head.headers.count)
        // The server's own variables are distinct by construction; configured ones and
        // headers never replace an earlier one. (Linear checks: a handful of names, and
        // hashing them showed in profiles.)
        func set(_ name: String, _ value: String) { vars.append((name, value)) }
        set("GATEWAY_INTERFACE", "CGI/1.1")
        set("SERVER_SOFTWARE", c.serverSoftware)
        set("SERVER_NAME", c.serverName)
        set("SERVER_PORT", String(c.serverPort))
        if let a = c.serverAddress { set("SERVER_ADDR", a) }
        set("SERVER_PROTOCOL", c.serverProtocol ?? (head.version.minor == 0 ? "HTTP/1.0" : "HTTP/1.1"))
        set("REQUEST_METHOD", head.method)
        set("REQUEST_URI", String(head.originForm))
        set("SCRIPT_NAME", c.scriptName)
        set("PATH_INFO", c.pathInfo)
        if !c.pathInfo.isEmpty, let root = c.documentRoot {
            set("PATH_TRANSLATED", joinPath(root, c.pathInfo))
        }
        set("QUERY_STRING", String(head.query))
        if let n = c.contentLength { set("CONTENT_LENGTH", String(n)) }
        if let t = head.headers.first("Content-Type") { set("CONTENT_TYPE", t) }
        set("REMOTE_ADDR", c.remoteAddress)
        set("REMOTE_PORT", String(c.remotePort))
        if let root = c.documentRoot { set("DOCUMENT_ROOT", root) }
        if let f = c.scriptFilename { set("SCRIPT_FILENAME", f) }
        set("REQUEST_SCHEME", c.https ? "https" : "http")
        if c.https { set("HTTPS", "on") }
        // php-cgi refuses to run without it when cgi.force_redirect is on (its default).
        set("REDIRECT_STATUS", "200")
        let serverCount = vars.count
        for (n, v) in c.extra where !vars.contains(where: { $0.name == n }) { set(n, v) }
        var configured = vars[serverCount...].map(\.name)
        // An absolute-form target's authority is the host (RFC 9112 §3.2.2), not the Host field.
        if head.isAbsoluteForm, let host = head.host, !configured.contains("HTTP_HOST") {
            set("HTTP_HOST", host)
            configured.append("HTTP_HOST")
        }
        for (name, value) in mergedHeaders(head.headers) where !configured.contains(name) { set(name, value) }
        return vars
    }

    /// HTTP_* variables: one per header name, repeated fields joined with ", "
    /// (Cookie with "; "), in first-seen order.
    static func mergedHeaders(_ headers: HTTPHeaders) -> [(String, String)] {
        var merged: [(String, String)] = []
        merged.reserveCapacity(headers.count)
        for i in 0..<headers.count {
            // The variable is made from the name's bytes where they lie (no String of the
            // header name first): every header of every request passes here.
            guard let name = headers.withName(at: i, variableName(forHeaderBytes:)) else { continue }
            let v = headers.value(at: i)
            if let k = merged.firstIndex(where: { $0.0 == name }) {
                merged[k].1 += (name == "HTTP_COOKIE" ? "; " : ", ") + v
            } else {
                merged.append((name, v))
            }
        }
        return merged
    }

    /// "Accept-Language" -> "HTTP_ACCEPT_LANGUAGE"; nil for names that must not pass.
    public static func variableName(forHeader name: String) -> String? {
        var name = name
        return name.withUTF8 { variableName(forHeaderBytes: UnsafeRawBufferPointer($0)) }
    }

    /// The names whose fields never become HTTP_* variables: httpoxy, and the framing
    /// (CONTENT_LENGTH and CONTENT_TYPE come from the framing; the app reads a
    /// de-chunked body of CONTENT_LENGTH bytes).
    static func withheld(_ name: UnsafeRawBufferPointer) -> Bool {
        equalsLowercase(name, "proxy") || equalsLowercase(name, "content-length") || equalsLowercase(name, "content-type")
            || equalsLowercase(name, "transfer-encoding") || equalsLowercase(name, "x-request-start")
    }

    static func variableName(forHeaderBytes name: UnsafeRawBufferPointer) -> String? {
        guard !name.isEmpty, !withheld(name) else { return nil }
        var valid = true
        // Written straight into the String's storage (a name of up to 10 bytes, "HTTP_HOST"
        // and the like, even stays within the String itself: no allocation at all).
        let out = String(unsafeUninitializedCapacity: 5 + name.count) { buffer in
            var n = 0
            for u in "HTTP_".utf8 { buffer[n] = u; n += 1 }
            for u in name {
                switch u {
                case UInt8(ascii: "a")...UInt8(ascii: "z"): buffer[n] = u - 32
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): buffer[n] = u
                case UInt8(ascii: "-"): buffer[n] = UInt8(ascii: "_")
                default:
                    valid = false  // "_", ".", etc.: would collide with another header's variable
                    return 0
                }
                n += 1
            }
            return n
        }
        return valid ? out : nil
    }

    /// The host part of a Host field ("example.com:8080" -> "example.com", "[::1]:80" -> "[::1]").
    public static func hostWithoutPort(_ host: String) -> String {
        let u = host.utf8  // (bytes, not Characters: this runs for every request)
        if u.first == UInt8(ascii: "["), let close = u.firstIndex(of: UInt8(ascii: "]")) { return String(host[...close]) }
        if let colon = u.lastIndex(of: UInt8(ascii: ":")) { return String(host[..<colon]) }
        return host
    }

    /// root + path with exactly one "/" between them (PATH_TRANSLATED, SCRIPT_FILENAME).
    public static func joinPath(_ root: String, _ sub: String) -> String {
        if root.hasSuffix("/") && sub.hasPrefix("/") { return root + sub.dropFirst() }
        if !root.hasSuffix("/") && !sub.hasPrefix("/") && !sub.isEmpty { return root + "/" + sub }
        return root + sub
    }
}
