import GatewayConfig
import GatewaySystem
import HTTPWire
import AppPool
import Exchanges
import HTTP2

/// One client connection of the epoll worker: its session (ClientSession: the input,
/// the intake and every decision about the connection), its output and its readiness.
final class EpollClient: SessionConnection {
    enum Phase: UInt8 {
        /// The session has the connection: reading a request, or writing a response.
        case session
        /// In the app's queue for a slot (or for a CGI place).
        case queued
        /// In an exchange: connecting to the app, sending it the request (or feeding a CGI
        /// program) and relaying the response.
        case upstream
        /// Closing: our side is shut, reading what the client still sends until EOF,
        /// so the kernel does not answer it with a reset that could eat our response.
        case lingering
        /// The connection speaks HTTP/2 (`h2`): its streams are clients of their own.
        case http2
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
    /// Not yet written: queued bytes, then a static file's range.
    var out = ClientOutput()
    var session: ClientSession
    var deadline = Double.infinity
    /// The connection's TLS (a listener with [[tls]]); its output encrypts through `out`.
    let tls: ClientTLS?
    var secure: Bool { tls != nil || stream?.parent.secure == true }
    /// An HTTP/2 connection: its session and streams.
    var h2: H2Connection? = nil
    /// This client is one HTTP/2 stream of another connection (it has no socket of its
    /// own: `fd` is its connection's, only for the addresses).
    let stream: H2Stream?

    /// The session's current request, with this worker's state of it (the session's own
    /// record of a request it could not parse is not one). Not a field of its own: 8
    /// bytes per idle connection.
    var request: EpollRequest? { session.record as? EpollRequest }

    init(fd: FileDescriptor, serial: UInt32, session: ClientSession, tls: ClientTLS? = nil, stream: H2Stream? = nil) {
        self.fd = fd
        self.serial = serial
        self.session = session
        self.tls = tls
        self.stream = stream
        out.tls = tls?.connection
    }

    lazy var remote: (address: String, port: Int) = Socket.peerAddress(fd)
    lazy var local: (address: String, port: Int) = Socket.localAddress(fd)

    var outputPending: Int { out.pending }
}

/// One request of the epoll worker: the request every class holds, and the state of its
/// exchange here.
final class EpollRequest: WorkerRequest {
    /// The FastCGI exchange with its slot and connection, from the body's end to the response's.
    var link: AppLink? = nil
    /// In the app's queue: the ticket its grant comes for.
    var ticket: Int64? = nil
    /// A CGI route's run, once it has a place.
    var cgiLink: CGILink? = nil
    unowned let worker: EpollWorker
    unowned let client: EpollClient

    init(head: HTTPRequestHead, id: RequestID, started: Double, keepAlive: Bool, worker: EpollWorker, client: EpollClient) {
        self.worker = worker
        self.client = client
        super.init(head: head, id: id, started: started, keepAlive: keepAlive)
    }
}
