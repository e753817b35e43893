import GatewaySystem
import HTTPWire
import Exchanges

/// Why a client connection ended early.
public enum ClientError: Error {
    case closed
    case timeout
    case io(SystemError)
}

/// A client socket with one read buffer, for the sync and thread workers. The socket is
/// non-blocking: a read or write is tried first and waits with poll() only when it
/// would block (a poll before each call, and for the thread worker two fcntl calls per
/// request to switch modes, were a third of its system calls). Waits are bounded by
/// deadlines, so a slow client holds a worker only as long as the configured timeouts
/// allow, and they keep the worker's heartbeat fresh.
public final class ClientConnection: SessionConnection {
    public let fd: FileDescriptor
    /// The socket's peer, or the source a PROXY protocol header named.
    public var remote: (address: String, port: Int)
    public let local: (address: String, port: Int)
    /// The connection's requests, sans-IO: its input buffer and every decision about it.
    var session: ClientSession
    /// What is still to be written (ClientOutput, as every worker class writes).
    var out = ClientOutput()
    /// The last read came up short: the socket has nothing more for now (a thread-worker
    /// connection is re-armed without one more read that would only say EAGAIN).
    var drained = false
    /// Reads land here first, so a read costs a copy of what arrived, not a 64 KiB fill
    /// (and the exchange's reads, on the same thread). The thread worker lends each
    /// connection its thread's buffer while it serves it, so an idle connection holds
    /// none; made here on first use otherwise.
    var scratch: [UInt8] = []
    let heartbeat: () -> Void
    /// Also watched while waiting: when it is readable, `heartbeat` runs at once (it
    /// handles the signal that made it readable).
    let wake: FileDescriptor?
    /// The connection's TLS (a listener with [[tls]]); its output encrypts through `out`.
    let tls: ClientTLS?
    var secure: Bool { tls != nil }

    init(fd: FileDescriptor, session: ClientSession, tls: ClientTLS? = nil, wake: FileDescriptor? = nil, heartbeat: @escaping () -> Void) {
        self.fd = fd
        self.session = session
        self.tls = tls
        self.wake = wake
        self.heartbeat = heartbeat
        remote = Socket.peerAddress(fd)
        local = Socket.localAddress(fd)
        out.tls = tls?.connection
    }

    /// Makes `scratch` if the connection has none (it is not serving with a lent one).
    func ensureScratch() {
        if scratch.isEmpty { scratch = .readBuffer(65536) }
    }

    /// Reads more bytes, waiting until `deadline` (monotonic seconds). False at EOF.
    public func fill(deadline: Double) throws(ClientError) -> Bool {
        while true {
            if let more = try readAvailable() { return more }
            try waitFor(readable: true, deadline: deadline)
        }
    }

    /// Reads what has arrived without waiting. nil: nothing yet; false: end of stream.
    public func readAvailable() throws(ClientError) -> Bool? {
        let n: Int?
        ensureScratch()
        do {
            n = try fd.read(into: &scratch, from: 0)
        } catch {
            if error.errno == ECONNRESET_ { throw .closed }
            throw .io(error)
        }
        drained = (n ?? 0) < scratch.count
        guard let n else { return nil }
        guard n > 0 else { return false }
        guard let tls else {
            session.received(scratch[0..<n])
            return true
        }
        return try receiveTLS(tls, scratch[0..<n])
    }

    /// Ciphertext in: its plaintext to the session, and what TLS has to say back (the
    /// handshake) written at once, before waiting for the client's next flight.
    func receiveTLS(_ tls: ClientTLS, _ bytes: ArraySlice<UInt8>) throws(ClientError) -> Bool {
        let open = tls.receive(bytes, session: &session, out: &out)
        if out.pending > 0 { try flush(timeout: 10) }
        return open
    }

    /// Writes `bytes` (after anything queued), waiting at most `timeout` seconds for each
    /// bit of progress.
    public func write(_ bytes: [UInt8], timeout: Double) throws(ClientError) {
        switch out.send(bytes, to: fd) {
        case .done: return
        case .failed: throw .closed
        default: try flush(timeout: timeout)
        }
    }

    /// Writes everything queued (a head, a page, a static file's range), waiting at most
    /// `timeout` seconds for each bit of progress.
    public func flush(timeout: Double) throws(ClientError) {
        while true {
            switch out.write(to: fd) {
            case .done: return
            case .wouldBlock, .budgetSpent: try waitFor(readable: false, deadline: Host.monotonicSeconds() + timeout)
            case .failed: throw .closed
            case .fileShrank: throw .io(SystemError(errno: 0, "sendfile: the file shrank while it was sent"))
            }
        }
    }

    func waitFor(readable: Bool, deadline: Double) throws(ClientError) {
        while true {
            let left = deadline - Host.monotonicSeconds()
            guard left > 0 else { throw .timeout }
            heartbeat()
            let ms = Int32(min(left, 1.0) * 1000) + 1
            do {
                var watched = [(fd, readable ? Poll.readable : Poll.writable)]
                if let wake { watched.append((wake, Poll.readable)) }
                if try Poll.wait(watched, timeoutMilliseconds: ms)[0] != 0 { return }
            } catch {
                throw .io(error)
            }
        }
    }

    /// Close by lingering: the client may still be sending a body we did not read.
    public var lingerOnClose = false
    /// Lingering lasts at most this long, and ends after a second of silence.
    static let lingerSeconds = 2.0

    public func close() {
        (session.record as? WorkerRequest)?.closeBody()
        out.discard()
        out.closeTLS(to: fd)
        if lingerOnClose { linger() }
        try? fd.close()
    }

    /// nginx's lingering close: our side is shut, and what the client still sends is read
    /// and dropped until it closes too (or the time is up), so the response it has not
    /// read yet is not destroyed by a reset.
    func linger() {
        Socket.shutdownWrite(fd)
        let end = Host.monotonicSeconds() + Self.lingerSeconds
        ensureScratch()
        while true {
            do {
                try waitFor(readable: true, deadline: min(end, Host.monotonicSeconds() + 1))
                guard let n = try fd.read(into: &scratch, from: 0) else { continue }
                if n == 0 { return }
            } catch {
                return
            }
        }
    }
}
