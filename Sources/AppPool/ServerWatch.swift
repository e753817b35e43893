import Exchanges
import GatewayConfig
import GatewaySystem
import Synchronization

/// The master's watch over connect apps' servers, one thread per server (a probe waits
/// on the network; one slow server must not delay the others, nor the master's loop):
/// - every `health_interval`, an active probe (HealthProbe): a good answer brings a
///   down server back at once, failed ones mark it down as failed requests do;
/// - the same probe learns the capacity of a server without max_conns;
/// - every `resolve_interval`, its host name is looked up again, and workers connect to
///   the new address from their next request (the slot table carries it).
/// Its findings go into the slot table, where every worker's choice of server reads them.
public final class ServerWatch: Sendable {
    let table: SlotTable
    let config: Configuration
    let log: @Sendable (_ warning: Bool, _ message: String) -> Void
    let stopped = Atomic<Bool>(false)

    /// Starts the threads; `log` gets each change of a server's state.
    public init(table: SlotTable, config: Configuration, log: @escaping @Sendable (_ warning: Bool, _ message: String) -> Void) {
        self.table = table
        self.config = config
        self.log = log
        for (a, app) in config.apps.enumerated() {
            for (k, server) in app.servers.enumerated() where Self.needsWatch(app, server) {
                do {
                    try Threads.start { [self] in run(app: a, server: k) }
                } catch {
                    log(true, "app \(app.name): cannot watch server \(server.address): \(error)")
                }
            }
        }
    }

    /// Ends the threads (each within a tenth of a second, or when its probe ends).
    public func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    static func needsWatch(_ app: AppConfig, _ server: UpstreamServer) -> Bool {
        probes(app, server) || hostName(server) != nil
    }

    /// Probes are sent to a server when health is on and there is something to learn:
    /// several servers (health), or a capacity not set.
    static func probes(_ app: AppConfig, _ server: UpstreamServer) -> Bool {
        app.healthInterval > 0 && (app.servers.count > 1 || server.learnsCapacity)
    }

    static func hostName(_ server: UpstreamServer) -> String? {
        if case .tcp(let host, _) = server.address, Socket.isHostName(host) { return host }
        return nil
    }

    func run(app a: Int, server k: Int) {
        let app = config.apps[a], server = app.servers[k]
        let probes = Self.probes(app, server)
        var nextProbe = Host.monotonicSeconds()
        var nextLookup = Host.monotonicSeconds()
        while !stopped.load(ordering: .relaxed) {
            let now = Host.monotonicSeconds()
            if let host = Self.hostName(server), now >= nextLookup {
                lookUp(host, app: a, server: k)
                nextLookup = app.resolveInterval > 0 ? now + app.resolveInterval : .infinity
            }
            if probes && now >= nextProbe {
                // A server with requests in flight is being probed by them (passive
                // health); a probe would only queue behind them in a single-threaded one.
                let busy = table.withLock(a) { area in area.inFlight(server: k, now: now) }
                if !busy { probe(app: a, server: k) }
                nextProbe = now + app.healthInterval
            }
            let next = min(probes ? nextProbe : .infinity, nextLookup)
            if next == .infinity { return }
            Host.sleep(seconds: min(0.1, max(0.001, next - Host.monotonicSeconds())))
        }
    }

    // MARK: - Name lookups

    func lookUp(_ host: String, app a: Int, server k: Int) {
        let app = config.apps[a]
        guard let text = Socket.resolveHost(host), let packed = Socket.pack(text) else {
            log(true, "app \(app.name): server \(app.servers[k].address): the name \(host) does not resolve; keeping its last address")
            return
        }
        let (changed, first) = table.withLock(a) { area in area.setResolved(server: k, packed) }
        if changed && !first { log(false, "app \(app.name): server \(app.servers[k].address): \(host) now resolves to \(text)") }
    }

    /// The address to probe: the looked-up one for a host name.
    func currentAddress(app a: Int, server k: Int) -> ConnectAddress {
        let server = config.apps[a].servers[k]
        guard case .tcp(_, let port) = server.address, Self.hostName(server) != nil else { return server.address }
        let packed = table.withLock(a) { area in area.resolved(server: k) }
        return packed.flatMap(Socket.unpack).map { .tcp(host: $0, port: port) } ?? server.address
    }

    // MARK: - Probes

    enum Outcome: Equatable {
        case up(capacity: Int?)
        case failed(String)
        /// Connected, but no answer in time: a busy single-threaded server answers its
        /// requests first. It says nothing of the server's health.
        case noAnswer
    }

    func probe(app a: Int, server k: Int) {
        let app = config.apps[a], server = app.servers[k]
        let address = currentAddress(app: a, server: k)
        let kind: HealthProbe.Kind = app.healthPath.map { .request(path: $0, root: app.root) } ?? .getValues
        var outcome = Self.probe(address, kind, timeout: app.healthTimeout)
        // A health_path says nothing of the capacity: ask for it too while it is unknown.
        if case .up(nil) = outcome, kind != .getValues, server.learnsCapacity,
           case .up(let c?) = Self.probe(address, .getValues, timeout: app.healthTimeout) {
            outcome = .up(capacity: c)
        }
        let now = Host.monotonicSeconds()
        let name = "app \(app.name): server \(server.address)"
        switch outcome {
        case .noAnswer:
            return
        case .up(let capacity):
            let change = table.withLock(a) { area in
                area.probeOutcome(server: k, up: true, maxFails: app.maxFails, failTimeout: app.failTimeout,
                                  untilNextProbe: app.healthInterval + app.healthTimeout, now: now)
            }
            if change == .back { log(false, "\(name) answered its health probe; back in use") }
            if let c = capacity, server.learnsCapacity,
               let n = table.withLock(a, { area in area.setCapacity(server: k, c, now: now) }) {
                log(false, "\(name) says it takes \(c) at once (FCGI_MAX_CONNS/FCGI_MAX_REQS); giving it \(n) connections")
            }
        case .failed(let why):
            let change = table.withLock(a) { area in
                area.probeOutcome(server: k, up: false, maxFails: app.maxFails, failTimeout: app.failTimeout,
                                  untilNextProbe: app.healthInterval + app.healthTimeout, now: now)
            }
            if case .markedDown(let period) = change {
                log(true, "\(name): health probe failed (\(why)); marked down (\(app.maxFails) in a row) until a probe succeeds, at most \(Int(period)) s")
            }
        }
    }

    /// How long a probe past its timeout waits for the server to close its connection.
    static let linger = 30.0

    /// Reads and drops until the server closes, at most `within` seconds.
    static func readUntilClosed(_ fd: FileDescriptor, within seconds: Double) {
        let until = Host.monotonicSeconds() + seconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let left = until - Host.monotonicSeconds(), left > 0,
              (try? fd.waitReadable(timeoutMilliseconds: Int32(left * 1000) + 1)) == true {
            guard let n = try? fd.read(into: &buffer, from: 0), n > 0 else { return }
        }
    }

    /// Reads the rest of the answer's last record (its padding), at most `within` seconds.
    static func readRest(_ fd: FileDescriptor, _ probe: inout HealthProbe, within seconds: Double) {
        let until = Host.monotonicSeconds() + seconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        probe.skip([])  // what came with the verdict first
        while !probe.answerComplete, case let left = until - Host.monotonicSeconds(), left > 0,
              (try? fd.waitReadable(timeoutMilliseconds: Int32(left * 1000) + 1)) == true {
            guard let n = try? fd.read(into: &buffer, from: 0), n > 0 else { return }
            probe.skip(Array(buffer[0..<n]))
        }
    }

    /// One probe: connect, send, read the verdict within `timeout` (else: no answer).
    static func probe(_ address: ConnectAddress, _ kind: HealthProbe.Kind, timeout: Double) -> Outcome {
        let deadline = Host.monotonicSeconds() + timeout
        let ms = Int32(max(1, timeout * 1000))
        let fd: FileDescriptor
        do {
            switch address {
            case .unix(let path): fd = try Socket.connectUnix(path: path, timeoutMilliseconds: ms)
            case .tcp(let host, let port): fd = try Socket.connectTCP(host: host, port: port, timeoutMilliseconds: ms)
            }
        } catch {
            return .failed("connect: \(error)")
        }
        defer { try? fd.close() }
        var probe = HealthProbe(kind)
        let serverName: String
        if case .tcp(let host, _) = address { serverName = host } else { serverName = "localhost" }
        do { try fd.writeAll(probe.request(serverName: serverName)) } catch { return .failed("write: \(error)") }
        var buffer = [UInt8](repeating: 0, count: 16384)
        // Past the timeout the probe says nothing. Our side is shut then, and the connection
        // read until the server closes it (up to `linger`): a single-threaded server busy
        // with a request reaches it later, and must neither wait on it for a request that
        // never comes (libfcgi would hold its one process) nor answer into a closed socket
        // (flup's single-threaded server exits on that EPIPE).
        while true {
            let left = deadline - Host.monotonicSeconds()
            guard left > 0, (try? fd.waitReadable(timeoutMilliseconds: Int32(left * 1000) + 1)) == true else {
                Socket.shutdownWrite(fd)
                readUntilClosed(fd, within: linger)
                return .noAnswer
            }
            let read: Int?
            do { read = try fd.read(into: &buffer, from: 0) } catch { return .failed("read: \(error)") }
            guard let n = read else { continue }
            if let v = probe.feed(Array(buffer[0..<n]), atEnd: n == 0) {
                let outcome: Outcome
                switch v {
                case .up(let c): outcome = .up(capacity: c)
                case .failed(let why): outcome = .failed(why)
                }
                // The answer's padding too, before closing: flup sends a record's padding
                // in a send of its own, and its single-threaded server exits on the EPIPE
                // if we are gone. (Shutting our side instead makes libfcgi drop its answer.)
                if n > 0 { readRest(fd, &probe, within: 1) }
                return outcome
            }
        }
    }
}
