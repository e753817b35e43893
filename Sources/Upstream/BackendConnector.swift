import GatewayConfig
import GatewaySystem

/// Opens connections to FastCGI apps (blocking workers).
public enum BackendConnector {
    public static func connect(_ address: ConnectAddress, timeout: Double) throws(UpstreamError) -> FileDescriptor {
        let ms = Int32(min(max(timeout * 1000, 1), Double(Int32.max)))
        do {
            switch address {
            case .unix(let path): return try Socket.connectUnix(path: path, timeoutMilliseconds: ms)
            case .tcp(let host, let port): return try Socket.connectTCP(host: host, port: port, timeoutMilliseconds: ms)
            }
        } catch {
            throw .connect("\(address): \(error)")
        }
    }
}
