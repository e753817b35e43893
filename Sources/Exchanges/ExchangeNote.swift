/// What an exchange wants logged. The engine imports no logger: it says what happened
/// and how loud it is, and the worker's driver writes it to the error log with the
/// request's metadata (request id, app), in one place for every worker class.
public struct ExchangeNote: Sendable, Equatable {
    public enum Level: Sendable, Equatable { case debug, info, warning, error }
    public let level: Level
    public let message: String

    public init(_ level: Level, _ message: String) {
        self.level = level
        self.message = message
    }
}

/// Limits every exchange shares, named once.
public enum ExchangeLimits {
    /// Local redirects (`Location: /path` without Status) one request may follow (then 500).
    public static let localRedirects = 5
    /// A request body up to this size is held in memory; a larger one goes to an unlinked
    /// temporary file.
    public static let bodyInMemory = 65536
}

/// The Server header and SERVER_SOFTWARE.
public enum ServerIdentity {
    public static let software = "gatewayd/0.1.0"
}

/// Local redirects (`Location: /path` without Status, RFC 3875 §6.2.2): the server
/// serves the new path itself, up to `ExchangeLimits.localRedirects` times per request.
public struct LocalRedirects: Sendable {
    public private(set) var followed = 0

    public init() {}

    /// Counts one more; true when it may be followed (the note says so), false when the
    /// request has had too many and gets a 500 (the note is the error).
    public mutating func follow(_ location: String) -> (allowed: Bool, note: ExchangeNote) {
        followed += 1
        guard followed <= ExchangeLimits.localRedirects else {
            return (false, ExchangeNote(.error, "more than \(ExchangeLimits.localRedirects) local redirects"))
        }
        return (true, ExchangeNote(.debug, "local redirect to \(location)"))
    }
}
