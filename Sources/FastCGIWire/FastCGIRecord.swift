/// FastCGI 1.0 constants (the FastCGI Specification, Open Market, 1996, §8).
public enum FastCGIRecordType: UInt8, Sendable {
    case beginRequest = 1
    case abortRequest = 2
    case endRequest = 3
    case params = 4
    case stdin = 5
    case stdout = 6
    case stderr = 7
    case data = 8
    case getValues = 9
    case getValuesResult = 10
    case unknownType = 11
}

public enum FastCGIRole: UInt16, Sendable {
    case responder = 1
    case authorizer = 2
    case filter = 3
}

public enum FastCGIProtocolStatus: UInt8, Sendable, Equatable {
    case requestComplete = 0
    /// The app refuses a second request on this connection (no multiplexing).
    case cantMultiplexConnection = 1
    /// The app is out of some resource; treat the slot as busy and try elsewhere.
    case overloaded = 2
    case unknownRole = 3
}

public enum FastCGI {
    public static let version: UInt8 = 1
    public static let headerLength = 8
    /// The largest content one record can carry (contentLength is 16 bits).
    public static let maxContentLength = 65535
    /// The request id of management records (GET_VALUES and its result).
    public static let managementRequestID: UInt16 = 0
    /// BEGIN_REQUEST flag: keep the connection open after this request.
    public static let keepConnectionFlag: UInt8 = 1

    /// Padding that brings `contentLength` to a multiple of 8, as libfcgi and the spec recommend.
    @inline(__always) public static func padding(for contentLength: Int) -> Int {
        (8 - contentLength & 7) & 7
    }
}

/// A name-value pair as carried by PARAMS and GET_VALUES(_RESULT).
public struct FastCGIPair: Sendable, Equatable {
    public var name: [UInt8]
    public var value: [UInt8]
    public init(name: [UInt8], value: [UInt8]) { self.name = name; self.value = value }
    public init(_ name: String, _ value: String) { self.name = Array(name.utf8); self.value = Array(value.utf8) }
    public var nameString: String { String(decoding: name, as: UTF8.self) }
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// A protocol violation by the peer. The connection cannot be trusted afterwards.
public struct FastCGIError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "FastCGI protocol error: \(message)" }
}
