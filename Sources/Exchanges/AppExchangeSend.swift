import FastCGIWire
import HTTPWire

/// How an exchange starts to send its request: the records, the body as the driver
/// gives it, and what only the send knows (the queue wait, X-Request-Start).
extension AppExchange {
    mutating func startSending(_ now: Double) {
        phase = .send
        heldSince = now
        hardDeadline = app.requestTimeout > 0 ? now + app.requestTimeout : .infinity
        inspectAt = app.slowRequest > 0 && (app.requestTimeout == 0 || app.slowRequest < app.requestTimeout) ? now + app.slowRequest : .infinity
        writeFailed = false
        bodyOffset = 0
        outgoingSent = 0
        outgoing = FastCGIRequestWriter.begin(requestID: requestID, params: params, timing: timing(), keepConnection: app.keepConnection)
        switch body {
        case .none:
            bodyEnded = true
            FastCGIEncoder.appendEndOfStream(.stdin, requestID: requestID, into: &outgoing)
        case .memory(let bytes):
            // One write for the whole request: an app that answers before reading the
            // empty STDIN record would otherwise find it on the kept connection later
            // and close it (libfcgi does).
            bodyEnded = true
            bytes.withUnsafeBytes { FastCGIEncoder.appendStdin(requestID: requestID, bytes: $0, into: &outgoing) }
            FastCGIEncoder.appendEndOfStream(.stdin, requestID: requestID, into: &outgoing)
        case .pieces:
            bodyEnded = false
        }
        relay = ResponseRelay(request: request, requestID: requestID, maxHeadSize: app.maxResponseHead, keepAlive: keepAliveWanted, gzip: gzip)
        waitDeadline = now + app.readTimeout
    }

    /// What only the send knows: when the request reached gatewayd (X-Request-Start, in
    /// epoch microseconds, as Heroku's router and New Relic write it) and how long it
    /// waited for its slot.
    public struct Timing: Sendable {
        public let queueWaitMicros: UInt64
        public let requestStartMicros: UInt64

        var pairs: [FastCGINameValue.DecimalPair] {
            requestStartMicros > 0
                ? [.init("GATEWAY_QUEUE_WAIT_US", queueWaitMicros), .init("HTTP_X_REQUEST_START", prefix: "t=", requestStartMicros)]
                : [.init("GATEWAY_QUEUE_WAIT_US", queueWaitMicros)]
        }
    }

    func timing() -> Timing {
        Timing(queueWaitMicros: UInt64((max(0, grantedAt - queuedSince) * 1_000_000).rounded()),
               requestStartMicros: UInt64(max(0, requestStartMicros)))
    }
}
