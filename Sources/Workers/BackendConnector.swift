import GatewayConfig
import GatewaySystem
import Exchanges

/// Opens connections to FastCGI apps (blocking workers).
public enum BackendConnector {
    public static func connect(_ address: ConnectAddress, timeout: Double) throws(UpstreamError) -> FileDescriptor {
        let ms = Int32(min(max(timeout * 1000, 1), Double(Int32.max)))
        do {
            switch address {
            // Non-blocking: the blocking exchange writes first and polls only when the
            // socket is full, and polls before each read.
            case .unix(let path): return try Socket.connectUnix(path: path, timeoutMilliseconds: ms, blocking: false)
            case .tcp(let host, let port): return try Socket.connectTCP(host: host, port: port, timeoutMilliseconds: ms, blocking: false)
            }
        } catch {
            throw .connect("\(address): \(error)")
        }
    }
}

extension BackendConnector {
    /// A connect an event loop started.
    public enum Started {
        case connected(FileDescriptor)
        /// Wait until writable, then check Socket.pendingError.
        case inProgress(FileDescriptor)
        /// The unix socket's backlog is full (its process is being replaced): try again shortly.
        case busy
    }

    /// Starts a non-blocking connect; the socket stays non-blocking.
    public static func startConnect(_ address: ConnectAddress) throws(UpstreamError) -> Started {
        do {
            let started: (fd: FileDescriptor, inProgress: Bool)
            switch address {
            case .unix(let path): started = try Socket.startConnectUnix(path: path)
            case .tcp(let host, let port): started = try Socket.startConnectTCP(host: host, port: port)
            }
            return started.inProgress ? .inProgress(started.fd) : .connected(started.fd)
        } catch where error.errno == EAGAIN_ {
            return .busy
        } catch {
            throw .connect("\(address): \(error)")
        }
    }
}
