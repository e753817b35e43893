import FastCGIWire
import CGIProtocol

/// Why talking to an app failed, and what the client should get for it.
public enum UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The app could not be reached (502).
    case connect(String)
    /// The app broke the FastCGI protocol or sent a bad CGI head (502).
    case protocolError(String)
    /// The app closed the connection before END_REQUEST (502).
    case closedEarly
    /// No output within backend_read (504).
    case timeout
    /// The app answered FCGI_OVERLOADED or CANT_MPX_CONN (503).
    case overloaded
    /// The app held the request past request_timeout (504; its process is ended).
    case deadline(Double)

    public var status: Int {
        switch self {
        case .timeout, .deadline: return 504
        case .overloaded: return 503
        default: return 502
        }
    }

    public var description: String {
        switch self {
        case .connect(let m): return "cannot reach the app: \(m)"
        case .protocolError(let m): return "bad response from the app: \(m)"
        case .closedEarly: return "the app closed the connection before ending the request"
        case .deadline(let s): return "the app held the request past request_timeout (\(s) s)"
        case .timeout: return "the app sent nothing within the read timeout"
        case .overloaded: return "the app is overloaded"
        }
    }
}

/// Turns the bytes an app sends into the events a worker acts on: the CGI head once,
/// then body bytes, STDERR text, and the end. Sans-IO; every worker class uses it.
public struct FastCGIResponseReader: Sendable {
    public enum Output: Sendable {
        case head(CGIResponseHead)
        /// A slice of the bytes fed in (or of the held head): no copy per STDOUT record.
        case body(ArraySlice<UInt8>)
        case stderr(ArraySlice<UInt8>)
        case end(appStatus: UInt32)
    }

    var decoder: FastCGIDecoder
    var headParser: CGIResponseHeadParser
    var headBuffer: [UInt8] = []
    public private(set) var headDone = false
    public private(set) var ended = false
    /// Bytes received from the app so far (a retry is safe only while this is 0).
    public private(set) var bytesReceived = 0

    public init(requestID: UInt16, maxHeadSize: Int) {
        decoder = FastCGIDecoder(requestID: requestID)
        headParser = CGIResponseHeadParser(maxHeadSize: maxHeadSize)
    }

    /// True when the connection may be reused: the request ended on a record boundary.
    public var reusable: Bool { ended && decoder.atRecordBoundary && pendingTail.isEmpty && !strayBytes }
    /// The app sent bytes after its END_REQUEST (a bug, or a compromised app): after
    /// this request's, or records of an earlier request id on this kept connection
    /// (skipped). The response stands; the connection is never used again, so those
    /// bytes cannot become the next client's response.
    public var strayBytes: Bool { bytesAfterEnd || decoder.strayRecords > 0 }
    private var bytesAfterEnd = false

    /// Consumes `input` whole (an unfinished record header is kept for the next call).
    private mutating func feed(_ input: ArraySlice<UInt8>) throws(UpstreamError) -> [Output] {
        var out: [Output] = []
        var rest = input
        while true {
            if ended {
                // What was held from the last call has been consumed: an END_REQUEST
                // split across reads leaves the connection reusable.
                pendingTail = []
                if !rest.isEmpty { bytesAfterEnd = true }
                return out
            }
            let step: FastCGIStep
            do { step = try decoder.decode(rest) } catch { throw .protocolError(error.message) }
            let base = rest.startIndex
            switch step.event {
            case .stdout(let r):
                try stdout(rest[(base + r.lowerBound)..<(base + r.upperBound)], into: &out)
            case .stderr(let r):
                out.append(.stderr(rest[(base + r.lowerBound)..<(base + r.upperBound)]))
            case .endRequest(let appStatus, let protocolStatus):
                switch protocolStatus {
                case .requestComplete: break
                case .overloaded, .cantMultiplexConnection: throw .overloaded
                case .unknownRole: throw .protocolError("the app does not support the responder role")
                }
                guard headDone else { throw .protocolError("the app ended the request without a response head") }
                ended = true
                out.append(.end(appStatus: appStatus))
            case .getValuesResult, .unknownType, nil:
                break
            }
            rest = rest.dropFirst(step.consumed)
            if step.event == nil && step.consumed == 0 { break }
        }
        if !rest.isEmpty { pendingTail = Array(rest) } else { pendingTail = [] }
        return out
    }

    /// Bytes of an unfinished record header; fed again in front of the next input.
    var pendingTail: [UInt8] = []

    /// Feeds new bytes, prefixed by any unfinished record from the last call.
    public mutating func receive(_ bytes: ArraySlice<UInt8>) throws(UpstreamError) -> [Output] {
        bytesReceived += bytes.count
        if pendingTail.isEmpty { return try feed(bytes) }
        return try feed((pendingTail + bytes)[...])
    }

    private mutating func stdout(_ bytes: ArraySlice<UInt8>, into out: inout [Output]) throws(UpstreamError) {
        if headDone {
            out.append(.body(bytes))
            return
        }
        // The usual case, a head whole in its first record, is parsed where it lies;
        // only a head split across records is gathered in `headBuffer`.
        let gathered = !headBuffer.isEmpty
        if gathered { headBuffer += bytes }
        let input = gathered ? headBuffer[...] : bytes
        let result: (consumed: Int, head: CGIResponseHead?)
        do { result = try headParser.parse(input) } catch { throw .protocolError(error.message) }
        guard let head = result.head else {
            if !gathered { headBuffer = Array(bytes) }
            return
        }
        headDone = true
        out.append(.head(head))
        if result.consumed < input.count { out.append(.body(input.dropFirst(result.consumed))) }
        headBuffer = []
    }
}
