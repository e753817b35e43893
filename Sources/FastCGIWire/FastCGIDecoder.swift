/// What the application sent, one event at a time.
public enum FastCGIEvent: Sendable, Equatable {
    /// STDOUT bytes: this range of the input just passed in (streamed; records may split anywhere).
    case stdout(Range<Int>)
    /// STDERR bytes: this range of the input.
    case stderr(Range<Int>)
    /// The request is over.
    case endRequest(appStatus: UInt32, protocolStatus: FastCGIProtocolStatus)
    case getValuesResult([FastCGIPair])
    /// The app did not understand a management record of this type.
    case unknownType(UInt8)
}

public struct FastCGIStep: Sendable, Equatable {
    public var consumed: Int
    public var event: FastCGIEvent?
}

/// Decodes the records an application sends back for one request (plus management
/// records), sans-IO. Same contract as the HTTP parser: pass the unconsumed bytes, drop
/// `consumed`, call again until the step has no event. STDOUT is streamed as it arrives,
/// never held until a record is complete.
public struct FastCGIDecoder: Sendable {
    enum State: Sendable, Equatable {
        case header
        case stream(FastCGIRecordType, remaining: Int, padding: Int)
        case wholeRecord(FastCGIRecordType, length: Int, padding: Int)
        case padding(Int)
        case failed
    }

    public private(set) var requestID: UInt16
    /// END_REQUEST arrived; any further record for this id is an error until `startRequest`.
    public private(set) var ended = false
    /// Records skipped because they carry another (non-management) request id: output
    /// for an earlier request on this kept connection, sent after its END_REQUEST. The
    /// caller must not reuse the connection once this is above 0.
    public private(set) var strayRecords = 0
    var state: State = .header

    public init(requestID: UInt16 = 1) {
        self.requestID = requestID
    }

    /// Reuses the decoder for the next request on a kept connection. The padding of the
    /// END_REQUEST record may still be pending; it is skipped as usual.
    public mutating func startRequest(_ id: UInt16) {
        switch state {
        case .header, .padding: break
        default: preconditionFailure("startRequest inside a record")
        }
        requestID = id
        ended = false
    }

    /// True on a record boundary: EOF here is not a truncated record.
    public var atRecordBoundary: Bool { state == .header }

    public mutating func decode(_ input: UnsafeRawBufferPointer) throws(FastCGIError) -> FastCGIStep {
        do {
            return try step(input)
        } catch {
            state = .failed
            throw error
        }
    }

    public mutating func decode(_ input: ArraySlice<UInt8>) throws(FastCGIError) -> FastCGIStep {
        var r: Result<FastCGIStep, FastCGIError>!
        input.withUnsafeBytes { b in
            do throws(FastCGIError) { r = .success(try decode(b)) } catch { r = .failure(error) }
        }
        return try r.get()
    }

    private static let none = FastCGIStep(consumed: 0, event: nil)

    private mutating func step(_ input: UnsafeRawBufferPointer) throws(FastCGIError) -> FastCGIStep {
        switch state {
        case .failed:
            throw FastCGIError("decoder used after an error")
        case .header:
            guard input.count >= FastCGI.headerLength else { return Self.none }
            try readHeader(input)
            return FastCGIStep(consumed: FastCGI.headerLength, event: nil)
        case .padding(let n):
            let k = min(n, input.count)
            guard k > 0 else { return Self.none }
            state = n == k ? .header : .padding(n - k)
            return FastCGIStep(consumed: k, event: nil)
        case .stream(let type, let remaining, let padding):
            let k = min(remaining, input.count)
            guard k > 0 else { return Self.none }
            state = remaining == k ? (padding > 0 ? .padding(padding) : .header) : .stream(type, remaining: remaining - k, padding: padding)
            return FastCGIStep(consumed: k, event: type == .stdout ? .stdout(0..<k) : .stderr(0..<k))
        case .wholeRecord(let type, let length, let padding):
            guard input.count >= length else { return Self.none }
            let content = UnsafeRawBufferPointer(rebasing: input[0..<length])
            let event = try wholeRecordEvent(type, content)
            state = padding > 0 ? .padding(padding) : .header
            return FastCGIStep(consumed: length, event: event)
        }
    }

    private mutating func readHeader(_ h: UnsafeRawBufferPointer) throws(FastCGIError) {
        guard h[0] == FastCGI.version else { throw FastCGIError("unsupported record version \(h[0])") }
        let id = UInt16(h[2]) << 8 | UInt16(h[3])
        let length = Int(h[4]) << 8 | Int(h[5])
        let padding = Int(h[6])
        guard let type = FastCGIRecordType(rawValue: h[1]) else { throw FastCGIError("unknown record type \(h[1])") }
        switch type {
        case .stdout, .stderr, .endRequest:
            guard id != FastCGI.managementRequestID else { throw FastCGIError("\(type) record on the management id, expected \(requestID)") }
            guard id == requestID else {
                // Each request on a kept connection has a new id, so bytes an app writes
                // after an END_REQUEST can be told from the answer to the next request.
                strayRecords += 1
                let skip = length + padding
                state = skip > 0 ? .padding(skip) : .header
                return
            }
            guard !ended else { throw FastCGIError("\(type) record after END_REQUEST") }
        case .getValuesResult, .unknownType:
            guard id == FastCGI.managementRequestID else { throw FastCGIError("management record with request id \(id)") }
        default:
            throw FastCGIError("record type \(type) is not sent by applications")
        }
        switch type {
        case .stdout, .stderr:
            // An empty record closes the stream; it carries no event.
            state = length > 0 ? .stream(type, remaining: length, padding: padding) : (padding > 0 ? .padding(padding) : .header)
        case .endRequest, .unknownType:
            guard length == 8 else { throw FastCGIError("\(type) body of \(length) bytes, expected 8") }
            state = .wholeRecord(type, length: length, padding: padding)
        default:
            state = .wholeRecord(type, length: length, padding: padding)
        }
    }

    private mutating func wholeRecordEvent(_ type: FastCGIRecordType, _ c: UnsafeRawBufferPointer) throws(FastCGIError) -> FastCGIEvent {
        switch type {
        case .endRequest:
            let appStatus = UInt32(c[0]) << 24 | UInt32(c[1]) << 16 | UInt32(c[2]) << 8 | UInt32(c[3])
            guard let ps = FastCGIProtocolStatus(rawValue: c[4]) else { throw FastCGIError("unknown protocol status \(c[4])") }
            ended = true
            return .endRequest(appStatus: appStatus, protocolStatus: ps)
        case .unknownType:
            return .unknownType(c[0])
        default:
            return .getValuesResult(try FastCGINameValue.decode(c))
        }
    }
}
