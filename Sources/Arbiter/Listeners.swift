import GatewayConfig
import GatewaySystem

/// The master's listening sockets, by address. Workers inherit them; the master never
/// reads from them. Every fd sits at 64 or above so that mapping them onto a worker's
/// low fd numbers can never clobber one another.
final class Listeners {
    private(set) var byAddress: [(address: BindAddress, fd: FileDescriptor)] = []

    /// Opens the addresses not yet open and closes those no longer wanted.
    func update(to wanted: [BindAddress], backlog: Int, unixMode: Int) throws(SystemError) -> (opened: [BindAddress], closed: [BindAddress]) {
        var opened: [BindAddress] = []
        var kept: [(BindAddress, FileDescriptor)] = []
        for address in wanted {
            if let existing = byAddress.first(where: { $0.address == address }) {
                kept.append((address, existing.fd))
                continue
            }
            let raw: FileDescriptor
            switch address {
            case .tcp(let host, let port): raw = try Socket.listenTCP(host: host == "localhost" ? "127.0.0.1" : host, port: port, backlog: Int32(backlog))
            case .tcp6(let host, let port): raw = try Socket.listenTCP(host: host, port: port, backlog: Int32(backlog))
            case .unix(let path): raw = try Socket.listenUnix(path: path, backlog: Int32(backlog), mode: unixMode)
            }
            let fd = try raw.duplicate(atLeast: 64)
            try? raw.close()
            kept.append((address, fd))
            opened.append(address)
        }
        var closed: [BindAddress] = []
        for old in byAddress where !wanted.contains(old.address) {
            close(old)
            closed.append(old.address)
        }
        byAddress = kept
        return (opened, closed)
    }

    func closeAll() {
        for l in byAddress { close(l) }
        byAddress = []
    }

    private func close(_ l: (address: BindAddress, fd: FileDescriptor)) {
        try? l.fd.close()
        if case .unix(let path) = l.address { Host.removeFile(path) }
    }
}
