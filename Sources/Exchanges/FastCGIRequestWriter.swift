import FastCGIWire

/// The bytes a worker sends to an app for one request.
public enum FastCGIRequestWriter {
    /// BEGIN_REQUEST and the whole PARAMS stream.
    public static func begin(requestID: UInt16, params: [(name: String, value: String)], timing: AppExchange.Timing? = nil,
                             keepConnection: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        FastCGIEncoder.appendBeginRequest(requestID: requestID, keepConnection: keepConnection, into: &out)
        if let t = timing {
            // Two pairs, without an array or a String for either.
            FastCGIEncoder.appendParams(requestID: requestID, strings: params, decimals: t.pairs, into: &out)
        } else {
            FastCGIEncoder.appendParams(requestID: requestID, strings: params, into: &out)
        }
        return out
    }

    /// Body bytes as STDIN records.
    public static func stdin(requestID: UInt16, _ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        bytes.withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: requestID, bytes: $0, into: &out) }
        return out
    }

    /// FCGI_ABORT_REQUEST: the app should stop work on the request (request_timeout).
    public static func abort(requestID: UInt16) -> [UInt8] {
        var out: [UInt8] = []
        FastCGIEncoder.appendAbortRequest(requestID: requestID, into: &out)
        return out
    }

    public static func endOfStdin(requestID: UInt16) -> [UInt8] {
        var out: [UInt8] = []
        FastCGIEncoder.appendEndOfStream(.stdin, requestID: requestID, into: &out)
        return out
    }
}
