import GatewayConfig
import Exchanges
import GatewaySystem

/// A worker's side of the slot table: take a slot for a request (waiting in FIFO order
/// when all are busy), give it back, and keep idle FastCGI connections (keep_conn)
/// only to processes that have nothing else to do.
///
/// A kept connection pins a single-threaded app process (libfcgi, php-cgi, flup serve
/// one connection until it closes), so the slot stays reserved for the worker that
/// keeps it. When another worker needs a slot and only reserved ones are idle, it asks
/// the keeper to give one back (a flag in the table and SIGUSR2); the keeper closes it
/// at its next wake-up. So no request ever queues behind another inside an app process.
public final class AppDispatcher {
    public let table: SlotTable
    let config: Configuration
    let runDirectory: String
    let pid: Int64
    /// Wakes the master (it starts processes for waiting requests and retires recycled ones).
    let nudgeMaster: () -> Void
    /// Idle kept connections, per app: slot -> (connection, process generation).
    /// Guarded by `keptLock`: the thread worker's pool threads share them.
    var kept: [[Int: (fd: FileDescriptor, generation: Int64, lastRequestID: UInt16)]]
    let keptLock = Condition()
    /// The worker's event loop watches its parked connections (epoll: they stay
    /// registered, and an event on one marks it), so a lease need not poll each one.
    let loopWatchesParked: Bool

    public struct Lease: Sendable {
        public let app: Int
        public let slot: Int
        public let generation: Int64
        public let address: ConnectAddress
        /// An open connection to the slot's idle process, kept from an earlier request.
        public let keptConnection: FileDescriptor?
        /// The FastCGI request id to use: 1 on a new connection, one more than the last
        /// on a kept one, so a late record of the last request cannot pass for this one.
        public let requestID: UInt16
    }

    public enum QueueFailure: Error {
        /// queue_timeout passed without a free slot.
        case timedOut
        /// The queue is full (far more waiting requests than workers can hold).
        case queueFull
    }

    public init(table: SlotTable, config: Configuration, runDirectory: String, loopWatchesParked: Bool = false,
                nudgeMaster: @escaping () -> Void) {
        self.table = table
        self.loopWatchesParked = loopWatchesParked
        self.config = config
        self.runDirectory = runDirectory
        self.pid = Int64(Processes.currentPID)
        self.nudgeMaster = nudgeMaster
        kept = Array(repeating: [:], count: config.apps.count)
        // Host names are resolved here, once per worker: a worker started after a DNS
        // change (a HUP, a restart, max_requests) connects to the new address.
        var resolved: [String: String] = [:]
        addresses = config.apps.indices.map { a in
            (0..<table.apps[a].slotCount).map { s in
                let address = Self.address(config.apps[a], area: table.areaIndices[a], slot: s, runDirectory: runDirectory)
                guard case .tcp(let host, let port) = address, Socket.isHostName(host) else { return address }
                if resolved[host] == nil { resolved[host] = Socket.resolveHost(host) ?? host }
                return .tcp(host: resolved[host]!, port: port)
            }
        }
    }

    /// Each slot's address, made once (a lease used to format a socket path per request).
    let addresses: [[ConnectAddress]]

    /// The socket the master binds for a hosted app's slot (the process gets it as fd 0).
    /// The area is in the name: after a HUP that changed an app's slots, its old
    /// processes drain on the old sockets while new ones serve on new sockets.
    public static func socketPath(runDirectory: String, app: String, area: Int, slot: Int) -> String {
        "\(runDirectory)/\(app).\(area).\(slot).sock"
    }

    func address(_ app: Int, slot: Int) -> ConnectAddress {
        slot < addresses[app].count ? addresses[app][slot]
            : Self.address(config.apps[app], area: table.areaIndices[app], slot: slot, runDirectory: runDirectory)
    }

    static func address(_ app: AppConfig, area: Int, slot: Int, runDirectory: String) -> ConnectAddress {
        switch app.kind {
        case .external(let servers): return servers[AppConfig.server(ofSlot: slot, servers)].address
        case .hosted: return .unix(path: socketPath(runDirectory: runDirectory, app: app.name, area: area, slot: slot))
        }
    }

    /// A slot for one request to `app`, waiting in the queue until `deadline` if all are
    /// busy. `onWait` runs at least every 200 ms while waiting (heartbeat, signals).
    public func acquire(app: Int, deadline: Double, avoid: Int64 = 0, onWait: () -> Void) -> Result<Lease, QueueFailure> {
        switch tryAcquire(app: app, notifyBySignal: false, avoid: avoid) {
        case .granted(let lease): return .success(lease)
        case .queueFull: return .failure(.queueFull)
        case .queued(let ticket): return waitForGrant(app: app, ticket: ticket, deadline: deadline, onWait: onWait)
        }
    }

    public enum Attempt {
        case granted(Lease)
        /// In the queue: the grant comes later (futex word, or SIGUSR2 with `notifyBySignal`).
        case queued(ticket: Int64)
        case queueFull
    }

    /// Takes a free slot now, or joins the queue without waiting. An event loop passes
    /// `notifyBySignal`: its grant then comes as SIGUSR2, and it collects it with `collectGrants`.
    /// `avoid`: servers (a bit each) the request should not get unless only they are free (a retry).
    public func tryAcquire(app: Int, notifyBySignal: Bool, avoid: Int64 = 0) -> Attempt {
        let now = Host.monotonicSeconds()
        var keeper: Int64? = nil
        var nudge = false
        var unparked: [Int] = []
        // The lease is made after the lock is released: `keptLock` is never taken inside it.
        enum Locked { case granted(Granted), queued(Int64), full }
        let result: Locked = table.withLock(app) { a in
            if a.record.pointee.queueLength == 0, let s = a.pickSlot(for: pid, now: now, avoid: avoid) {
                a.take(s, for: pid, now: now)
                return .granted(Granted(a, s, pid))
            }
            guard let t = a.enqueue(pid, notify: notifyBySignal, now: now, avoid: avoid) else {
                a.record.pointee.rejected += 1
                return .full
            }
            // The waiters before us may all be retries waiting for servers of their own,
            // with a slot free that they will not take: dispatch looks past them.
            if a.record.pointee.serverCount > 1 {
                a.dispatch(now: now)
                if let s = a.collect(t) { return .granted(Granted(a, s, pid)) }
            }
            // Others were waiting first: a connection this worker parked goes to them
            // too (we take our turn like everyone else).
            for s in a.slotIndices where a.slots[s].keeper == pid && a.slots[s].state == SlotState.idle.rawValue {
                a.slots[s].keeper = 0
                a.slots[s].reclaim = 0
                unparked.append(s)
            }
            if !unparked.isEmpty { a.dispatch(now: now) }
            keeper = a.requestReclaim(excluding: pid)
            // The master may start a process for us (dynamic, ondemand).
            nudge = a.record.pointee.hosted == 1 && a.census().running < a.slotCount
            return .queued(t)
        }
        if !unparked.isEmpty { keptLock.withLock { for s in unparked { try? kept[app].removeValue(forKey: s)?.fd.close() } } }
        if let k = keeper { Processes.signal(Int32(k), Signals.usr2) }
        if nudge { nudgeMaster() }
        switch result {
        case .granted(let got): return .granted(lease(app, got))
        case .queued(let t): return .queued(ticket: t)
        case .full: return .queueFull
        }
    }

    func waitForGrant(app: Int, ticket: Int64, deadline: Double, onWait: () -> Void) -> Result<Lease, QueueFailure> {
        let area = table.apps[app]
        let word = area.waiterWordPointer(ticket)
        while true {
            let now = Host.monotonicSeconds()
            var keeper: Int64? = nil
            let (got, seq): (Granted?, UInt32) = table.withLock(app) { a in
                a.dispatch(now: now)  // a slot may have come back without a release (an overload pause ended)
                if let s = a.collect(ticket) { return (Granted(a, s, pid), 0) }
                if now >= deadline {
                    if let s = a.cancel(ticket) { return (Granted(a, s, pid), 0) }
                    a.record.pointee.rejected += 1
                } else {
                    keeper = a.requestReclaim(excluding: pid)  // a connection parked while we waited
                }
                return (nil, a.waiterWord(ticket))
            }
            if let got { return .success(lease(app, got)) }
            if let k = keeper { Processes.signal(Int32(k), Signals.usr2) }
            if now >= deadline { return .failure(.timedOut) }
            let ms = Int32(min(deadline - now, 0.2) * 1000) + 1
            Futex.wait(word, expected: seq, timeoutMilliseconds: ms)
            onWait()
        }
    }

    /// For an event loop: the grants among its queued `tickets` (oldest first), under
    /// one lock. A worker's requests are granted in its ticket order (the queue is FIFO,
    /// and a hand-off goes to the releaser's oldest waiter), so the scan stops at the
    /// first ticket still waiting. `periodic` (every 200 ms or so): also re-run the
    /// queue (a slot may be back without a release: an overload pause ended) and ask a
    /// keeper of a parked connection to give it back, as a blocking waiter does.
    /// (`count` tickets, the i-th given by `ticket(i)`: not a generic collection, which
    /// across modules was iterated unspecialized.)
    public func collectGrants(app: Int, count: Int, ticket: (Int) -> Int64, periodic: Bool) -> [(ticket: Int64, lease: Lease)] {
        let now = Host.monotonicSeconds()
        var keeper: Int64? = nil
        let got: [(Int64, Granted)] = table.withLock(app) { a in
            if periodic { a.dispatch(now: now) }
            var got: [(Int64, Granted)] = []
            for i in 0..<count {
                let t = ticket(i)
                guard let s = a.collect(t) else { break }
                got.append((t, Granted(a, s, pid)))
            }
            if periodic && got.count < count { keeper = a.requestReclaim(excluding: pid) }
            return got
        }
        if let k = keeper { Processes.signal(Int32(k), Signals.usr2) }
        return got.map { ($0.0, lease(app, $0.1)) }
    }

    /// For an event loop: leaves the queue (queue_timeout, or the client went away).
    /// Returns the slot if it was granted meanwhile; `timedOut` counts a rejection.
    public func cancelWait(app: Int, ticket: Int64, timedOut: Bool) -> Lease? {
        let got: Granted? = table.withLock(app) { a in
            if let s = a.cancel(ticket) { return Granted(a, s, pid) }
            if timedOut { a.record.pointee.rejected += 1 }
            return nil
        }
        return got.map { lease(app, $0) }
    }

    /// A slot just taken, read under the lock: is the connection we keep to it still ours?
    struct Granted {
        let slot: Int
        let generation: Int64
        let keptByUs: Bool
        /// The address the master last looked the slot's host name up to (ServerWatch).
        let looked: (version: Int64, address: Socket.PackedAddress)?

        init(_ a: AppArea, _ s: Int, _ pid: Int64) {
            slot = s
            generation = a.slots[s].generation
            keptByUs = a.slots[s].keeper == pid
            let f = a.slots[Int(a.slots[s].serverFirst)]
            looked = f.resolvedVersion > 0
                ? (f.resolvedVersion, Socket.PackedAddress(family: f.resolvedFamily, high: f.resolvedHigh, low: f.resolvedLow)) : nil
        }
    }

    /// The address of a host-name server as the master last looked it up, made once per
    /// change: (app, slot's server) -> (version, address). Guarded by `keptLock`.
    var lookedUp: [Int: (version: Int64, address: ConnectAddress)] = [:]

    func address(_ app: Int, _ got: Granted) -> ConnectAddress {
        let configured = address(app, slot: got.slot)
        guard let looked = got.looked, case .tcp(_, let port) = configured else { return configured }
        let key = app << 32 | AppConfig.server(ofSlot: got.slot, config.apps[app].servers)
        return keptLock.withLock {
            if let known = lookedUp[key], known.version == looked.version { return known.address }
            guard let text = Socket.unpack(looked.address) else { return configured }
            let a = ConnectAddress.tcp(host: text, port: port)
            lookedUp[key] = (looked.version, a)
            return a
        }
    }

    /// Whoever removes a connection from `kept` owns it: uses it or closes it.
    ///
    /// A parked connection is checked before reuse, as nginx checks its cached upstream
    /// connections: between requests the app has nothing to say, so if it is readable
    /// (bytes written after its END_REQUEST, by a bug or a compromised app) or at EOF
    /// (the app closed it), it is closed and the request opens a fresh one. Otherwise
    /// those bytes would be read as the next client's response.
    func lease(_ app: Int, _ got: Granted) -> Lease {
        var connection: FileDescriptor? = nil
        var id: UInt16 = 1
        if got.keptByUs, let k = keptLock.withLock({ kept[app].removeValue(forKey: got.slot) }) {
            // A parked connection that is readable (the app closed it, or wrote past its
            // END_REQUEST) is closed, not reused, as nginx does with its cached ones.
            if k.generation == got.generation, loopWatchesParked || (try? k.fd.waitReadable(timeoutMilliseconds: 0)) == false {
                connection = k.fd
                id = k.lastRequestID == UInt16.max ? 1 : k.lastRequestID + 1
            } else {
                try? k.fd.close()
            }
        }
        return Lease(app: app, slot: got.slot, generation: got.generation, address: address(app, got),
                     keptConnection: connection, requestID: id)
    }

    /// Passive health of a connect app's server: how the request on `lease` ended.
    /// Returns the server's index, and how long it was marked down for (nil: it was not).
    public func serverOutcome(_ lease: Lease, _ error: ServerFault) -> (server: Int, downFor: Double?) {
        let app = config.apps[lease.app]
        let k = AppConfig.server(ofSlot: lease.slot, app.servers)
        guard app.servers.count > 1 else { return (k, nil) }
        let now = Host.monotonicSeconds()
        return (k, table.withLock(lease.app) { a in a.serverOutcome(lease.slot, error, maxFails: app.maxFails, failTimeout: app.failTimeout, now: now) })
    }

    /// Gives the slot back. `connection`: the open backend connection, kept for the next
    /// request when `reusable` and keep_conn allow it, else closed. `served`: a request
    /// ran to the end on this slot (counts towards max_requests and slow requests).
    /// `overloaded`: the app answered FCGI_OVERLOADED; the slot rests for a moment.
    /// Returns whether the request counted as slow (slow_request).
    @discardableResult
    public func release(_ lease: Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool = false) -> Bool {
        releasing(lease, connection: connection, reusable: reusable, served: served, overloaded: overloaded, collectHandOff: false).slow
    }

    /// For an event loop: as `release`, and when the slot goes straight to one of this
    /// worker's own queued requests, that grant is collected under the same lock and
    /// returned, so the loop can send the next request at once.
    public func releaseHandingOff(_ lease: Lease, connection: FileDescriptor?, reusable: Bool, served: Bool,
                                  overloaded: Bool = false) -> (slow: Bool, handOff: (ticket: Int64, lease: Lease)?) {
        let r = releasing(lease, connection: connection, reusable: reusable, served: served, overloaded: overloaded, collectHandOff: true)
        return (r.slow, r.handOff.map { ($0.ticket, self.lease(lease.app, $0.granted)) })
    }

    func releasing(_ lease: Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool,
                   collectHandOff: Bool) -> (slow: Bool, handOff: (ticket: Int64, granted: Granted)?) {
        let now = Host.monotonicSeconds()
        let app = config.apps[lease.app]
        let wantKeep = reusable && app.keepConnection && connection != nil
        // The connection goes into `kept` before the table says it is parked: a thread
        // of this worker may be granted the slot the moment the lock is released.
        if wantKeep, let c = connection { park(c, app: lease.app, slot: lease.slot, generation: lease.generation, lastRequestID: lease.requestID) }
        let (keptIt, retire, slow, handOff) = table.withLock(lease.app) { a in
            var slow = false
            if served && app.slowRequest > 0 && now - a.slots[lease.slot].busySince > app.slowRequest {
                a.record.pointee.slowRequests += 1
                slow = true
            }
            if overloaded { a.slots[lease.slot].unavailableUntil = now + 0.25 }
            let r = a.release(lease.slot, by: pid, generation: lease.generation, keep: wantKeep, countRequest: served, now: now)
            var handOff: (ticket: Int64, granted: Granted)? = nil
            if collectHandOff, let t = r.handedTo, let s = a.collect(t) { handOff = (t, Granted(a, s, pid)) }
            return (r.kept, r.retire, slow, handOff)
        }
        if !keptIt, let c = connection {
            if wantKeep {
                // Not parked after all: close it, unless someone already took it out.
                let mine = keptLock.withLock { () -> Bool in
                    guard kept[lease.app][lease.slot]?.fd == c else { return false }
                    kept[lease.app][lease.slot] = nil
                    return true
                }
                if mine { try? c.close() }
            } else {
                try? c.close()
            }
        }
        if retire { nudgeMaster() }
        return (slow, handOff)
    }

    func park(_ c: FileDescriptor, app: Int, slot: Int, generation: Int64, lastRequestID: UInt16) {
        keptLock.withLock {
            if let old = kept[app].updateValue((c, generation, lastRequestID), forKey: slot), old.fd != c { try? old.fd.close() }
        }
    }

    /// Closes kept connections that another worker asked for (SIGUSR2), or whose
    /// process has been replaced, and hands their slots to the queue.
    public func answerReclaims() {
        keptLock.lock()
        defer { keptLock.unlock() }
        for app in kept.indices where !kept[app].isEmpty {
            let mine = kept[app]
            let drop: [Int] = table.withLock(app) { a in
                var drop: [Int] = []
                for (s, k) in mine {
                    let slot = a.slots[s]
                    if slot.keeper != pid || slot.generation != k.generation {
                        drop.append(s)  // no longer ours: the process was replaced
                    } else if slot.reclaim == 1 && slot.state == SlotState.idle.rawValue {
                        a.slots[s].keeper = 0
                        a.slots[s].reclaim = 0
                        drop.append(s)
                    }
                }
                if !drop.isEmpty { a.dispatch(now: Host.monotonicSeconds()) }
                return drop
            }
            for s in drop { try? kept[app].removeValue(forKey: s)?.fd.close() }
        }
    }

    /// This worker's public counters (status page).
    public func publish(workerSlot: Int, requests: Int, connections: Int) {
        guard workerSlot >= 0 && workerSlot < SlotTable.workerCapacity else { return }
        table.workers[workerSlot].requests = Int64(requests)
        table.workers[workerSlot].connections = Int64(connections)
    }
}
