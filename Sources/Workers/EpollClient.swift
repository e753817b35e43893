import GatewayConfig
import GatewaySystem
import HTTPWire
import AppPool
import Exchanges

/// One client connection of the epoll worker, and where it stands.
final class EpollClient: ReadsProxyHeader {
    enum Phase {
        /// Waiting for (the rest of) a request head; idle between keep-alive requests.
        case head
        /// Buffering the request body (in memory, then in a temporary file).
        case body
        /// In the app's queue for a slot.
        case queued
        /// Connecting to the app (or waiting to retry a unix socket with a full backlog).
        case connecting
        /// Sending the request to the app and relaying its response.
        case upstream
        /// Writing a finished response; then the next request, or close.
        case flushing
        /// Closing: our side is shut, reading what the client still sends until EOF,
        /// so the kernel does not answer it with a reset that could eat our response.
        case lingering
    }

    let fd: FileDescriptor
    /// Tells this connection's events apart from those of an earlier one with the same fd.
    let serial: UInt32
    var phase = Phase.head
    var closed = false
    /// Edge-triggered readiness, as last seen: cleared when a read or write comes up short.
    var readable = false
    var writable = true
    /// After a flush: serve the next request (true) or close.
    var keepAfterFlush = false
    /// Close by lingering: the client may still be sending what we did not read.
    var lingerOnClose = false
    /// The listener speaks the PROXY protocol: a header comes before the first request.
    var expectsProxyHeader = false
    // (The flags sit together: each Bool between 8-byte fields costs 8 bytes per connection.)
    /// Received and not yet parsed: input[inputStart...]. Freed whenever it empties,
    /// so an idle keep-alive connection holds no buffer.
    var input: [UInt8] = []
    var inputStart = 0
    /// Not yet written: output[outputStart...].
    var output: [UInt8] = []
    var outputStart = 0
    /// A static file's bytes fileOffset..<fileEnd, sent by sendfile once `output` is out.
    var file: FileDescriptor? = nil
    var fileOffset = 0
    var fileEnd = 0
    /// The head and body parser with its deadlines (the one every worker class reads through).
    var intake: RequestIntake
    var deadline = Double.infinity
    var request: EpollRequest? = nil
    /// A response complete on our side, not yet all written: logged when it is.
    var sending: EpollRequest? = nil
    init(fd: FileDescriptor, serial: UInt32, intake: RequestIntake) {
        self.fd = fd
        self.serial = serial
        self.intake = intake
    }

    lazy var remote: (address: String, port: Int) = Socket.peerAddress(fd)
    lazy var local: (address: String, port: Int) = Socket.localAddress(fd)

    var unconsumed: ArraySlice<UInt8> { input[inputStart...] }
    var outputPending: Int { output.count - outputStart + (fileEnd - fileOffset) }

    func closeFile() {
        try? file?.close()
        file = nil
        fileOffset = 0
        fileEnd = 0
    }

    func consume(_ n: Int) {
        inputStart += n
        if inputStart == input.count {
            input = []
            inputStart = 0
        }
    }

    func append(_ bytes: ArraySlice<UInt8>) {
        if inputStart > 0 && inputStart > input.count / 2 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
        input += bytes
    }
}

/// One request of the epoll worker, from its head to the end of its response.
final class EpollRequest {
    let head: HTTPRequestHead
    let requestID: RequestID
    let started: Double
    /// The target being served: the request's own, or a local redirect's.
    var target: String
    var redirects = LocalRedirects()
    /// The version the access log shows when it is not the request's (a 400 before one was read).
    var logVersion: String? = nil
    var keepAlive: Bool
    var status = 0
    var bytesSent = 0
    var upstreamTime: Double? = nil
    /// The route label /metrics counts it under, from its first routing.
    var metricsLabel: String? = nil

    // The body, read whole before a slot is taken (as nginx does by default): a slow
    // upload never holds an app process.
    /// Memory up to ExchangeLimits.bodyInMemory, then an unlinked temporary file (the
    /// same BufferedBody the thread worker and CGI keep a body in).
    var body = BufferedBody()
    var bodyLength: UInt64 { body.length }
    var spool: FileDescriptor? { body.spool }
    var bodyDone = false

    // The app.
    var app: AppConfig? = nil
    var appIndex = 0
    var match: RouteMatch? = nil
    /// The FastCGI exchange (the engine), from the body's end to the response's.
    var exchange: AppExchange? = nil
    var ticket: Int64? = nil
    var lease: AppDispatcher.Lease? = nil
    var upstreamStart = 0.0
    /// When the request asked for a slot (queue wait metrics).
    var queueStart = 0.0
    var backend: FileDescriptor? = nil
    var connecting = false
    /// Edge-triggered readiness of the app connection, as last seen.
    var backendReadable = false
    var backendWritable = false
    /// A CGI route: the program, and its run once it has a place.
    var cgi: CGIScript? = nil
    var cgiRun: EpollCGIRun? = nil

    init(head: HTTPRequestHead, requestID: RequestID, started: Double, keepAlive: Bool) {
        self.head = head
        self.requestID = requestID
        self.started = started
        self.target = head.target
        self.keepAlive = keepAlive
    }

    var hasBody: Bool { head.framing != .none && head.framing != .contentLength(0) }
    var redirected: Bool { target != head.target }

    func closeSpool() {
        body.close()
        body = BufferedBody()
    }
}
