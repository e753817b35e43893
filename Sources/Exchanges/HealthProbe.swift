import CGIProtocol
import FastCGIWire

/// An active health probe of one FastCGI server, sans-IO: the bytes to send, then the
/// verdict from the bytes that come back. Either a management query (FCGI_GET_VALUES:
/// any well-formed answer means the server's FastCGI layer is alive, and it may say how
/// many connections it takes) or, with a `health_path`, a whole GET request whose
/// status must be below 400 (the app itself answers, not only its FastCGI layer).
public struct HealthProbe: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// The server answered well. `capacity`: the connections it says it takes at
        /// once (FCGI_MAX_CONNS, or FCGI_MAX_REQS if lower), when it says.
        case up(capacity: Int?)
        /// It answered, and the answer says it is not well (a status of 400 or more, a
        /// FastCGI protocol error, or bytes that are not FastCGI).
        case failed(String)
    }

    public enum Kind: Sendable, Equatable {
        case getValues
        case request(path: String, root: String?)
    }

    public let kind: Kind
    var decoder = FastCGIDecoder(requestID: 1)
    /// Bytes not yet decoded (a management record is decoded whole).
    var pending: [UInt8] = []
    var headBytes: [UInt8] = []
    var status: Int? = nil

    public init(_ kind: Kind) {
        self.kind = kind
    }

    /// The names asked for in a management query.
    public static let valueNames = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]

    /// What to write to a fresh connection.
    public func request(serverName: String) -> [UInt8] {
        var out: [UInt8] = []
        switch kind {
        case .getValues:
            FastCGIEncoder.appendGetValues(Self.valueNames, into: &out)
        case .request(let path, let root):
            let split = path.firstIndex(of: "?")
            let script = split.map { String(path[..<$0]) } ?? path
            let query = split.map { String(path[path.index(after: $0)...]) } ?? ""
            var params: [(name: String, value: String)] = [
                ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"), ("SERVER_SOFTWARE", "gatewayd"),
                ("REQUEST_METHOD", "GET"), ("REQUEST_URI", path), ("SCRIPT_NAME", script), ("PATH_INFO", ""),
                ("QUERY_STRING", query), ("SERVER_NAME", serverName), ("SERVER_PORT", "80"),
                ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "0"), ("CONTENT_LENGTH", ""),
                ("HTTP_HOST", serverName), ("HTTP_USER_AGENT", "gatewayd-health-probe"),
            ]
            if let root { params += [("DOCUMENT_ROOT", root), ("SCRIPT_FILENAME", root + script)] }
            FastCGIEncoder.appendBeginRequest(requestID: 1, keepConnection: false, into: &out)
            FastCGIEncoder.appendParams(requestID: 1, strings: params, into: &out)
            FastCGIEncoder.appendEndOfStream(.stdin, requestID: 1, into: &out)
        }
        return out
    }

    /// Feeds what the server sent. nil: more is needed (`atEnd` says the server closed:
    /// then there is always a verdict).
    public mutating func feed(_ bytes: [UInt8], atEnd: Bool) -> Verdict? {
        pending += bytes
        var offset = 0
        defer { pending.removeFirst(offset) }
        // Until a step neither consumes nor tells anything (a record with no content,
        // such as an empty FCGI_GET_VALUES_RESULT, is an event after its header).
        while true {
            let rest = pending[offset...]
            let step: FastCGIStep
            do { step = try decoder.decode(rest) } catch { return .failed("\(error)") }
            offset += step.consumed
            if let v = verdict(step.event, rest) { return v }
            if step.consumed == 0 && step.event == nil { break }
        }
        return atEnd ? .failed("closed the connection before answering") : nil
    }

    /// Whether every byte of the records read so far has come (their padding too).
    public var answerComplete: Bool { decoder.atRecordBoundary && pending.isEmpty }

    /// Reads bytes after the verdict (the rest of a record), for `answerComplete`.
    public mutating func skip(_ bytes: [UInt8]) {
        pending += bytes
        var offset = 0
        while offset < pending.count, let step = try? decoder.decode(pending[offset...]), step.consumed > 0 || step.event != nil {
            offset += step.consumed
        }
        pending.removeFirst(offset)
    }

    mutating func verdict(_ event: FastCGIEvent?, _ input: ArraySlice<UInt8>) -> Verdict? {
        switch event {
        case .getValuesResult(let pairs) where kind == .getValues:
            return .up(capacity: Self.capacity(pairs))
        case .unknownType where kind == .getValues:
            // It does not know management records, yet it speaks FastCGI.
            return .up(capacity: nil)
        case .stdout(let range) where status == nil:
            // (The range counts from the start of the bytes passed in.)
            headBytes += input.dropFirst(range.lowerBound).prefix(range.count)
            var parser = CGIResponseHeadParser(maxHeadSize: 16384)
            let parsed: Result<CGIResponseHead?, CGIResponseError> = headBytes.withUnsafeBytes { b in
                do throws(CGIResponseError) { return .success(try parser.parse(b).head) } catch { return .failure(error) }
            }
            switch parsed {
            case .success(let h): status = h?.status
            case .failure(let e): return .failed("\(e)")
            }
            return nil
        case .endRequest(_, let protocolStatus):
            guard protocolStatus == .requestComplete else { return .failed("ended the request with \(protocolStatus)") }
            guard let status else { return .failed("ended the request without a response head") }
            return status < 400 ? .up(capacity: nil) : .failed("answered \(status)")
        default:
            return nil
        }
    }

    /// FCGI_MAX_CONNS, lowered to FCGI_MAX_REQS when that is lower (a server that does
    /// not multiplex serves one request per connection). nil when neither is a number.
    public static func capacity(_ pairs: [FastCGIPair]) -> Int? {
        func number(_ name: String) -> Int? {
            pairs.first { $0.nameString == name }.flatMap { Int($0.valueString) }.flatMap { $0 > 0 ? $0 : nil }
        }
        switch (number("FCGI_MAX_CONNS"), number("FCGI_MAX_REQS")) {
        case (let c?, let r?): return min(c, r)
        case (let c?, nil): return c
        case (nil, let r?): return r
        case (nil, nil): return nil
        }
    }
}
