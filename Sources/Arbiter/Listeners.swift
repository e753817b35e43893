import GatewayConfig
import GatewaySystem

/// The master's listening sockets, by address. Workers inherit them; the master never
/// reads from them. Every fd sits at 64 or above so that mapping them onto a worker's
/// low fd numbers can never clobber one another.
final class Listeners {
    private(set) var byAddress: [(address: BindAddress, fd: FileDescriptor)] = []
    /// Sockets systemd passed that no `bind` address has taken yet, by address.
    var fromSystemd: [String: FileDescriptor] = [:]
    /// Addresses whose socket systemd owns: closing ours never removes a unix socket file.
    var systemdOwned = Set<String>()
    /// Sockets an upgrading master passed us (USR2), by address: used as systemd's are,
    /// but ours to close and remove once we own them.
    var inherited: [String: FileDescriptor] = [:]
    /// A new master (USR2) shares every socket: a stop then closes ours without putting
    /// the drop-all filter on them or removing a unix socket file (both would be the new
    /// master's loss).
    var handedOver = false

    /// The variable that carries the listening fds to a new master (nginx's NGINX variable).
    static let inheritVariable = "GATEWAYD_LISTEN_FDS"

    /// Takes the sockets an old master passed on USR2 ("3,4" in GATEWAYD_LISTEN_FDS); the
    /// variable is removed so no worker or app sees it.
    func adoptInherited() -> [String] {
        guard let list = Host.environmentValue(Self.inheritVariable) else { return [] }
        Host.unsetEnvironment(Self.inheritVariable)
        for raw in list.split(separator: ",").compactMap({ Int32($0) }) {
            let fd = FileDescriptor(raw)
            let address = SystemdSockets.boundAddress(fd)
            guard !address.isEmpty, let moved = try? fd.duplicate(atLeast: 64) else { continue }
            try? fd.close()
            inherited[address] = moved
        }
        return inherited.keys.sorted()
    }

    /// Closes the inherited sockets no `bind` address wanted; returns their addresses.
    func closeUnclaimedInherited() -> [String] { Self.closeLeft(&inherited) }

    /// Closes the passed sockets still in `sockets` (no `bind` address took them).
    static func closeLeft(_ sockets: inout [String: FileDescriptor]) -> [String] {
        let left = sockets.keys.sorted()
        for fd in sockets.values { try? fd.close() }
        sockets = [:]
        return left
    }

    /// Takes the sockets of systemd socket activation, to be used by the `bind`
    /// addresses they listen on instead of binding again.
    func adoptSystemdSockets() -> [String] {
        for (address, fd) in SystemdSockets.take() { fromSystemd[address] = fd }
        return fromSystemd.keys.sorted()
    }

    /// Closes the systemd sockets no `bind` address wanted; returns their addresses.
    func closeUnclaimedSystemdSockets() -> [String] { Self.closeLeft(&fromSystemd) }

    /// Opens the addresses not yet open and closes those no longer wanted.
    func update(to wanted: [BindAddress], backlog: Int, unixMode: Int) throws(SystemError) -> (opened: [BindAddress], closed: [BindAddress]) {
        var opened: [BindAddress] = []
        var kept: [(BindAddress, FileDescriptor)] = []
        for address in wanted {
            if let existing = byAddress.first(where: { $0.address == address }) {
                kept.append((address, existing.fd))
                continue
            }
            let raw = try open(address, backlog: backlog, unixMode: unixMode)
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

    /// systemd's socket for the address if it passed one; else a new one.
    private func open(_ address: BindAddress, backlog: Int, unixMode: Int) throws(SystemError) -> FileDescriptor {
        let key = address.description.replacingLocalhost
        if let passed = inherited.removeValue(forKey: key) { return passed }
        if let passed = fromSystemd.removeValue(forKey: key) {
            systemdOwned.insert(key)
            return passed
        }
        switch address {
        case .tcp(let host, let port): return try Socket.listenTCP(host: host == "localhost" ? "127.0.0.1" : host, port: port, backlog: Int32(backlog))
        case .tcp6(let host, let port): return try Socket.listenTCP(host: host, port: port, backlog: Int32(backlog))
        case .unix(let path): return try Socket.listenUnix(path: path, backlog: Int32(backlog), mode: unixMode)
        }
    }

    /// `refusingNew`: a stop. Each TCP socket first stops queueing new connections, so
    /// that between the workers' last accept and the last close nothing lands in a
    /// backlog that would be reset; a client sees a refused connect instead. Not for a
    /// socket systemd owns, which outlives us.
    func closeAll(refusingNew: Bool = false) {
        for l in byAddress {
            let tcp: Bool
            if case .unix = l.address { tcp = false } else { tcp = true }
            if refusingNew && tcp && !handedOver && !systemdOwned.contains(l.address.description) { Socket.refuseNewConnections(l.fd) }
            close(l)
        }
        byAddress = []
    }

    private func close(_ l: (address: BindAddress, fd: FileDescriptor)) {
        try? l.fd.close()
        if case .unix(let path) = l.address, !handedOver, !systemdOwned.contains(l.address.description) { Host.removeFile(path) }
    }
}

extension String {
    /// "localhost:8000" names the socket "127.0.0.1:8000" (as the bind does).
    var replacingLocalhost: String { hasPrefix("localhost:") ? "127.0.0.1" + dropFirst(9) : self }
}
