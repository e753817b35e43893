import Exchanges
import TLS

/// A client connection's TLS, between its socket and its session (every worker class):
/// ciphertext read from the socket is decrypted into the session; what the session
/// writes is encrypted by its ClientOutput (which holds the same TLSConnection).
final class ClientTLS {
    let connection: TLSConnection
    /// Bytes have come: the first must begin a TLS handshake record.
    var started = false

    init(_ context: TLSContext) {
        connection = TLSConnection(context)
    }

    enum Input {
        case ok
        /// A plain HTTP request on a TLS port: it gets `plainHTTPResponse`, then a close.
        case plainHTTP
        /// Not TLS, or a TLS error: the connection is closed without a word.
        case failed(String)
        /// The client sent close_notify.
        case closed
    }

    /// Ciphertext read from the socket: its plaintext goes to `session`. Handshake
    /// records to send back wait in the connection's TLS output (ClientOutput.pullTLS).
    func receive(_ bytes: ArraySlice<UInt8>, into session: inout ClientSession) -> Input {
        receive(bytes) { session.received($0) }
    }

    /// Ciphertext in, its plaintext handed to `deliver` a record at a time.
    func receive(_ bytes: ArraySlice<UInt8>, deliver: (ArraySlice<UInt8>) -> Void) -> Input {
        if !started, let first = bytes.first {
            started = true
            // 0x16: a handshake record. A capital letter: an HTTP method, in the clear.
            if first != 0x16 { return (65...90).contains(first) ? .plainHTTP : .failed("not a TLS handshake") }
        }
        connection.receive(bytes)
        // A record is at most 16 KiB of plaintext; the buffer lives only for this call,
        // so an idle connection holds none.
        var plain = [UInt8](unsafeUninitializedCapacity: 16384) { _, n in n = 16384 }  // written before read
        while true {
            switch connection.read(into: &plain) {
            case .bytes(let n): deliver(plain[0..<n])
            case .wantMore: return .ok
            case .closed: return .closed
            case .failed(let why): return .failed(why)
            }
        }
    }

    /// What every driver does with ciphertext it read: plaintext to the session, TLS's own
    /// records (the handshake, tickets) queued on `out`, and for plain HTTP nginx's 400
    /// queued in the clear. False: the connection ends once `out` is written.
    func receive(_ bytes: ArraySlice<UInt8>, session: inout ClientSession, out: inout ClientOutput) -> Bool {
        switch receive(bytes, into: &session) {
        case .ok:
            out.pullTLS()
            return true
        case .closed, .failed:
            return false
        case .plainHTTP:
            out.tls = nil
            out.queue(Self.plainHTTPResponse[...])
            return false
        }
    }

    /// nginx's answer to plain HTTP on an HTTPS port.
    static let plainHTTPResponse: [UInt8] = {
        let body = "400 Bad Request: the plain HTTP request was sent to HTTPS port\n"
        return Array(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body).utf8)
    }()
}
