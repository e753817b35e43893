internal import CTLS

/// One TLS connection, sans-IO: the ciphertext that arrives goes in (`receive`), the
/// plaintext comes out (`read`); plaintext to send goes in (`write`) and the ciphertext
/// to put on the wire comes out (`takeOutput`). It owns no socket: the workers keep
/// theirs, with their polls, epoll loops and deadlines. The handshake runs inside
/// `read` (and `handshake`), as bytes allow.
public final class TLSConnection {
    let raw: OpaquePointer
    /// Kept alive while the connection uses it.
    let context: TLSContext

    public enum ReadResult: Equatable {
        /// This many plaintext bytes were read into the buffer.
        case bytes(Int)
        /// Nothing more until more ciphertext comes (or output goes out).
        case wantMore
        /// The peer closed TLS (close_notify).
        case closed
        /// A protocol error (a bad record, a failed handshake, not TLS at all).
        case failed(String)
    }

    public init(_ context: TLSContext, server: Bool = true, serverName: String? = nil) {
        self.context = context
        raw = gw_tls_conn_new(context.raw, server ? 1 : 0, serverName)!
    }

    deinit { gw_tls_conn_free(raw) }

    /// Ciphertext from the peer.
    public func receive(_ bytes: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        _ = gw_tls_feed(raw, p, bytes.count)
    }

    public func receive(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { receive($0) }
    }

    /// Runs the handshake as far as the bytes allow: true once it is done.
    public func handshake() -> ReadResult {
        switch Int(gw_tls_handshake(raw)) {
        case 1: return .bytes(0)
        case GW_TLS_WANT: return .wantMore
        default: return .failed(lastError)
        }
    }

    public var handshakeDone: Bool { gw_tls_handshake(raw) == 1 }

    /// Plaintext into `buffer` from `offset`.
    public func read(into buffer: inout [UInt8], from offset: Int = 0) -> ReadResult {
        let r = buffer.withUnsafeMutableBytes { b in Int(gw_tls_read(raw, b.baseAddress! + offset, b.count - offset)) }
        switch r {
        case let n where n > 0: return .bytes(n)
        case GW_TLS_WANT: return .wantMore
        case GW_TLS_CLOSED: return .closed
        default: return .failed(lastError)
        }
    }

    /// Encrypts `bytes` (all of them) into the output. False on a TLS error.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return true }
        var done = 0
        while done < bytes.count {
            let r = gw_tls_write(raw, p + done, bytes.count - done)
            guard r > 0 else { return false }
            done += Int(r)
        }
        return true
    }

    @discardableResult
    public func write(_ bytes: ArraySlice<UInt8>) -> Bool { bytes.withUnsafeBytes { write($0) } }

    /// A close_notify for the peer (in the output).
    public func close() { gw_tls_shutdown(raw) }

    /// Ciphertext waiting for the wire.
    public var pendingOutput: Int { gw_tls_pending_out(raw) }

    /// Appends the waiting ciphertext to `out` (one copy, straight from OpenSSL's buffer).
    public func takeOutput(into out: inout [UInt8]) {
        var p: UnsafeRawPointer? = nil
        let n = gw_tls_peek_out(raw, &p)
        guard n > 0, let p else { return }
        out.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n))
        gw_tls_clear_out(raw)
    }

    /// After the handshake: the ALPN protocol ("h2", "http/1.1"; "" if none), the name
    /// the client asked for (SNI), whether the session was resumed, and the version.
    public var alpn: String { text { gw_tls_alpn(raw, $0, $1) } }
    public var serverName: String { text { gw_tls_sni(raw, $0, $1) } }
    public var resumed: Bool { gw_tls_resumed(raw) == 1 }
    /// Whether it serves `context`'s certificate (the one SNI chose).
    public func usesContext(_ context: TLSContext) -> Bool { gw_tls_uses(raw, context.raw) == 1 }
    public var version: String { String(cString: gw_tls_version(raw)) }
    var lastError: String { text { gw_tls_error(raw, $0, $1) } }

    func text(_ fill: (UnsafeMutablePointer<CChar>, Int) -> Void) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { fill($0.baseAddress!, $0.count) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A client's session to resume on a later connection (tests).
    public func session() -> TLSSession? { gw_tls_get_session(raw).map(TLSSession.init) }
    public func resume(_ s: TLSSession) { gw_tls_set_session(raw, s.raw) }
}

/// A TLS session a client may resume.
public final class TLSSession {
    let raw: UnsafeMutableRawPointer
    init(_ raw: UnsafeMutableRawPointer) { self.raw = raw }
    deinit { gw_tls_session_free(raw) }
}
