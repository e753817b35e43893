import GatewayConfig
import GatewaySystem
import HTTPWire
import AppPool
import Exchanges

/// One client connection of the epoll worker: its session (ClientSession: the input,
/// the intake and every decision about the connection), its output and its readiness.
final class EpollClient {
    enum Phase: UInt8 {
        /// The session has the connection: reading a request, or writing a response.
        case session
        /// In the app's queue for a slot (or for a CGI place).
        case queued
        /// Connecting to the app (or waiting to retry a unix socket with a full backlog).
        case connecting
        /// Sending the request to the app (or CGI program) and relaying its response.
        case upstream
        /// Closing: our side is shut, reading what the client still sends until EOF,
        /// so the kernel does not answer it with a reset that could eat our response.
        case lingering
    }

    let fd: FileDescriptor
    /// Tells this connection's events apart from those of an earlier one with the same fd.
    let serial: UInt32
    var phase = Phase.session
    var closed = false
    /// Edge-triggered readiness, as last seen: cleared when a read or write comes up short.
    var readable = false
    var writable = true
    /// The session's steps are being carried out (`drive` is on the stack).
    var driving = false
    // (The flags sit together: each Bool between 8-byte fields costs 8 bytes per connection.)
    /// Not yet written: output[outputStart...].
    var output: [UInt8] = []
    var outputStart = 0
    /// A static file's bytes fileOffset..<fileEnd, sent by sendfile once `output` is out.
    var file: FileDescriptor? = nil
    var fileOffset = 0
    var fileEnd = 0
    var session: ClientSession
    var deadline = Double.infinity

    /// The session's current request, with this worker's state of it (the session's own
    /// record of a request it could not parse is not one). Not a field of its own: 8
    /// bytes per idle connection.
    var request: EpollRequest? { session.record as? EpollRequest }

    init(fd: FileDescriptor, serial: UInt32, session: ClientSession) {
        self.fd = fd
        self.serial = serial
        self.session = session
    }

    lazy var remote: (address: String, port: Int) = Socket.peerAddress(fd)
    lazy var local: (address: String, port: Int) = Socket.localAddress(fd)

    var outputPending: Int { output.count - outputStart + (fileEnd - fileOffset) }

    func closeFile() {
        try? file?.close()
        file = nil
        fileOffset = 0
        fileEnd = 0
    }
}

/// One request of the epoll worker: the session's record, and the state of its exchange.
final class EpollRequest: RequestRecord {
    // The body, read whole before a slot is taken (as nginx does by default): a slow
    // upload never holds an app process.
    /// Memory up to ExchangeLimits.bodyInMemory, then an unlinked temporary file (the
    /// same BufferedBody the blocking workers keep a body in).
    var body = BufferedBody()
    var spool: FileDescriptor? { body.spool }

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

    func closeSpool() {
        body.close()
        body = BufferedBody()
    }
}
