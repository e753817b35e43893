/// A request the parser refuses, with the HTTP status it implies (h11's habit):
/// 400 malformed or ambiguous framing, 413 body too large, 414 request line too long,
/// 417 unknown expectation, 431 head too large, 501 unknown transfer coding, 505 version.
/// After any of these the connection must be closed: the framing can no longer be trusted.
public struct HTTPParseError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let status: Int
    public let message: String

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status): \(message)" }

    static func bad(_ message: String) -> HTTPParseError { HTTPParseError(400, message) }
}
