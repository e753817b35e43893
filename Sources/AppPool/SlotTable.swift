import GatewayConfig
import GatewaySystem

// The slot table: what the master and every worker share about each app, in one
// MAP_SHARED region. Each app has a fixed number of connection slots (one per hosted
// process, or max_conns for an external app) and a FIFO queue of requests waiting for
// one. Every change happens under the app's robust process-shared mutex; each waiter
// sleeps on the futex word of its queue entry, which its grant bumps.
//
// Layout: [RegionHeader][area offsets x areaCapacity][WorkerRecord x workerCapacity]
// [metrics], then per app area, 64-byte aligned:
// [mutex][AppRecord][SlotRecord x slots][WaiterRecord x queueCapacity].
// An area is found through the offsets; a HUP that adds an app or changes its slots
// appends a new area in the room the region keeps for that (the file is sparse: room
// not used costs no memory). Workers of one generation are told which areas are their
// apps' (`--app-areas`); old workers keep theirs while they drain.

/// One connection slot. Plain integers only: this lives in shared memory.
public struct SlotRecord {
    public var state: Int64 = SlotState.empty.rawValue
    /// The worker pid that holds the slot (busy).
    public var owner: Int64 = 0
    /// The worker pid that keeps an idle connection to this slot's process (keep_conn).
    /// Only that worker may take the slot until it gives the connection back.
    public var keeper: Int64 = 0
    /// 1: a waiting request asked the keeper to close its kept connection.
    public var reclaim: Int64 = 0
    /// Hosted: the app process serving this slot (0: none running).
    public var processPID: Int64 = 0
    /// Bumped for every new process: a kept connection from an older one is stale.
    public var generation: Int64 = 0
    /// Requests served by the current process, and its recycling limit (0: none).
    public var requests: Int64 = 0
    public var requestLimit: Int64 = 0
    /// 1: retire the process when its request ends (max_requests reached).
    public var retire: Int64 = 0
    public var busySince: Double = 0
    public var idleSince: Double = 0
    public var startedAt: Double = 0
    /// After FCGI_OVERLOADED the slot is left alone until then (and while its server is down).
    public var unavailableUntil: Double = 0
    /// A connect app's server this slot connects to, that server's first slot and its weight.
    public var server: Int64 = 0
    public var serverFirst: Int64 = 0
    public var weight: Int64 = 1
    /// Per server, kept on its first slot: requests given to it (the tie-break of the
    /// choice), failures in a row, failures in all, the last one's kind (a ServerFault),
    /// how many times in a row it was marked down, and until when it is down.
    public var picks: Int64 = 0
    public var failures: Int64 = 0
    public var failedTotal: Int64 = 0
    public var lastError: Int64 = 0
    public var downCount: Int64 = 0
    public var downUntil: Double = 0
    /// 1: beyond its server's capacity (learned from FCGI_GET_VALUES): never picked.
    public var disabled: Int64 = 0
    /// Per server, on its first slot: the capacity it said it has (0: not said), and
    /// its host name's address as the master last looked it up (family 4 or 6, 0: not
    /// looked up; 16 bytes; `resolvedVersion` goes up each time it changes).
    public var learnedCapacity: Int64 = 0
    public var resolvedFamily: Int64 = 0
    public var resolvedHigh: UInt64 = 0
    public var resolvedLow: UInt64 = 0
    public var resolvedVersion: Int64 = 0
}

public enum SlotState: Int64, Sendable {
    /// Hosted: no process runs for it.
    case empty = 0
    case idle = 1
    case busy = 2
    /// Its process is being stopped (idle retirement or max_requests).
    case retiring = 3
}

/// Per-app counters and the queue's ring indexes.
public struct AppRecord {
    public var slotCount: Int64 = 0
    /// 1: gatewayd runs the processes (a slot without one is empty).
    public var hosted: Int64 = 0
    public var queueCapacity: Int64 = 0
    /// Tickets: head is the oldest not yet served, tail the next to hand out.
    public var queueHead: Int64 = 0
    public var queueTail: Int64 = 0
    /// Requests waiting now (cancelled ones excluded), and the most ever.
    public var queueLength: Int64 = 0
    public var queueMax: Int64 = 0
    /// Requests that got a slot.
    public var accepted: Int64 = 0
    /// App processes started after the first ones (crashes, recycling, scaling).
    public var restarts: Int64 = 0
    public var slowRequests: Int64 = 0
    /// Requests answered 503: queue_timeout passed or the queue was full.
    public var rejected: Int64 = 0
    /// A connect app's servers (their slots follow one another); 1 for a hosted app.
    public var serverCount: Int64 = 1
    /// Slots that may be used (not `disabled`): the app's concurrency now.
    public var usableSlots: Int64 = 0
}

/// A request waiting for a slot.
public struct WaiterRecord {
    public var ticket: Int64 = -1
    public var pid: Int64 = 0
    public var state: Int64 = WaiterState.free.rawValue
    public var slot: Int64 = -1
    /// The futex word this waiter sleeps on: bumped and woken when it is granted a slot,
    /// so a grant wakes one waiter, not the whole queue.
    public var word: UInt32 = 0
    /// 1: the waiter is an event loop (the epoll worker), which cannot sleep on the
    /// word: its grant also sends it SIGUSR2, which wakes its loop through the signal pipe.
    public var notify: UInt32 = 0
    /// When it joined the queue (monotonic seconds): how long the oldest has waited
    /// decides how far a release may pass it over (SlotDecisions.ownWaiter).
    public var since: Double = 0
    /// Servers it should not get (a bit each: its earlier tries there failed).
    public var avoid: Int64 = 0
}

public enum WaiterState: Int64 {
    case free = 0, waiting = 1, granted = 2
}

/// A worker's public counters, for the status page. Only the worker writes them.
public struct WorkerRecord {
    public var pid: Int64 = 0
    public var id: Int64 = 0
    public var requests: Int64 = 0
    public var connections: Int64 = 0
    public var startedAt: Double = 0

    public init(pid: Int64 = 0, id: Int64 = 0, requests: Int64 = 0, connections: Int64 = 0, startedAt: Double = 0) {
        self.pid = pid
        self.id = id
        self.requests = requests
        self.connections = connections
        self.startedAt = startedAt
    }
}

struct RegionHeader {
    var magic: Int64
    /// Areas made so far, and where the next one goes.
    var areaCount: Int64
    var workerCapacity: Int64
    var end: Int64
    /// The TLS session ticket key every worker seals and opens tickets with (80 random
    /// bytes, made by the master), so a client resumes with whichever worker it reaches.
    var ticketKey: TicketKeyWords = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// The key before the last rotation (it still opens tickets), and a sequence number
    /// the master makes odd while it writes the keys and even when they are whole.
    var previousTicketKey: TicketKeyWords = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var ticketSequence: UInt64 = 0
}

typealias TicketKeyWords = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

/// Pointers into one app's part of the region.
public struct AppArea {
    public let lock: UnsafeMutableRawPointer
    public let record: UnsafeMutablePointer<AppRecord>
    public let slots: UnsafeMutablePointer<SlotRecord>
    public let waiters: UnsafeMutablePointer<WaiterRecord>

    public var slotCount: Int { Int(record.pointee.slotCount) }
    public var slotIndices: Range<Int> { 0..<slotCount }
}

/// The slot table in the shared region. @unchecked Sendable: every field is a `let`
/// (pointers into the region); an app's records are read and written only under that
/// app's robust process-shared mutex (`withLock`); a worker record is written by the
/// master when it starts that worker and then by that worker alone (under its counters
/// lock), and read by status pages as plain integers (a momentary view); the area
/// offsets are written only by the master, before any worker is told of the new area;
/// the TLS ticket keys only by the master, under a sequence number it makes odd while
/// it writes (read with atomic loads of it before and after: a seqlock).
///
/// One object is a view of the region for one configuration: `apps[i]` is the area of
/// that configuration's app i (`areaIndices[i]`).
public final class SlotTable: @unchecked Sendable {
    public static let workerCapacity = 1024
    public static let areaCapacity = 256
    static let magic: Int64 = 0x6761_7465_7761_7964  // "gatewayd"

    public let memory: SharedMemory
    public let apps: [AppArea]
    /// Which area of the region each app of this view is (per-app metrics are kept by area).
    public let areaIndices: [Int]
    public let workers: UnsafeMutablePointer<WorkerRecord>
    /// Request counts and latencies, by route and app (/metrics).
    public let metrics: MetricsArea
    let header: UnsafeMutablePointer<RegionHeader>
    let offsets: UnsafeMutablePointer<Int64>
    /// This process's pid: a grant made by an event loop to its own waiter needs no
    /// signal (the loop collects its grants after every round of events).
    public static let ownPID: Int64 = Int64(Processes.currentPID)

    /// Waiting requests an app's queue can hold: twice what the workers can have in
    /// flight, so it fills only when something is badly wrong (then: 503 at once).
    public static func queueCapacity(_ server: ServerConfig) -> Int {
        let perWorker: Int
        switch server.workerClass {
        case .sync: perWorker = 1
        case .thread: perWorker = server.threads
        case .epoll: perWorker = server.workerConnections
        }
        return min(65536, max(256, 2 * server.workers * perWorker))
    }

    static func align(_ n: Int) -> Int { (n + 63) & ~63 }

    static var offsetsOffset: Int { align(MemoryLayout<RegionHeader>.stride) }
    static var workersOffset: Int { offsetsOffset + align(areaCapacity * 8) }
    static var metricsOffset: Int { workersOffset + align(workerCapacity * MemoryLayout<WorkerRecord>.stride) }
    static var firstAppOffset: Int { metricsOffset + align(MetricsArea.size) }

    static func areaSize(slots: Int, queue: Int) -> Int {
        align(SharedMutex.size) + align(MemoryLayout<AppRecord>.stride)
            + align(slots * MemoryLayout<SlotRecord>.stride) + align(queue * MemoryLayout<WaiterRecord>.stride)
    }

    /// Binds one app's area at `p`, sized by the counts stored in its record.
    static func area(at p: UnsafeMutableRawPointer) -> AppArea {
        let lock = p
        let record = (p + align(SharedMutex.size)).bindMemory(to: AppRecord.self, capacity: 1)
        let slotCount = Int(record.pointee.slotCount)
        let queue = Int(record.pointee.queueCapacity)
        let slotsAt = p + align(SharedMutex.size) + align(MemoryLayout<AppRecord>.stride)
        let slots = slotsAt.bindMemory(to: SlotRecord.self, capacity: slotCount)
        let waiters = (slotsAt + align(slotCount * MemoryLayout<SlotRecord>.stride)).bindMemory(to: WaiterRecord.self, capacity: queue)
        return AppArea(lock: lock, record: record, slots: slots, waiters: waiters)
    }

    /// A view of the region with the given areas as its apps.
    init(memory: SharedMemory, areas: [Int]) {
        self.memory = memory
        header = memory.base.bindMemory(to: RegionHeader.self, capacity: 1)
        offsets = (memory.base + Self.offsetsOffset).bindMemory(to: Int64.self, capacity: Self.areaCapacity)
        workers = (memory.base + Self.workersOffset).bindMemory(to: WorkerRecord.self, capacity: Self.workerCapacity)
        metrics = MetricsArea(at: memory.base + Self.metricsOffset)
        areaIndices = areas
        let offsets = self.offsets
        apps = areas.map { Self.area(at: memory.base + Int(offsets[$0])) }
    }

    /// The same region with other areas as its apps (the next generation's, after a HUP).
    public func view(areas: [Int]) -> SlotTable {
        SlotTable(memory: memory, areas: areas)
    }

    /// The TLS session ticket keys all workers share (80 bytes each: the current one, and
    /// the one before the last rotation, nil before any), with their sequence number; nil
    /// while the master is writing them (ask again later).
    public var ticketKeys: (current: [UInt8], previous: [UInt8]?, sequence: UInt64)? {
        let sequenceWord = UnsafeMutableRawPointer(header).advanced(by: MemoryLayout<RegionHeader>.offset(of: \RegionHeader.ticketSequence)!)
            .assumingMemoryBound(to: UInt64.self)
        let before = SharedCounter.load(sequenceWord)
        guard before % 2 == 0 else { return nil }
        let current = withUnsafeBytes(of: header.pointee.ticketKey) { Array($0) }
        let previous = withUnsafeBytes(of: header.pointee.previousTicketKey) { Array($0) }
        guard SharedCounter.load(sequenceWord) == before else { return nil }
        return (current, before == 0 ? nil : previous, before)
    }

    /// Master only: a new current key; the current one becomes the previous.
    public func rotateTicketKey() {
        let sequenceWord = UnsafeMutableRawPointer(header).advanced(by: MemoryLayout<RegionHeader>.offset(of: \RegionHeader.ticketSequence)!)
            .assumingMemoryBound(to: UInt64.self)
        var random = SystemRandomNumberGenerator()
        SharedCounter.add(sequenceWord, 1)  // odd: being written
        header.pointee.previousTicketKey = header.pointee.ticketKey
        header.pointee.ticketKey = (random.next(), random.next(), random.next(), random.next(), random.next(),
                                    random.next(), random.next(), random.next(), random.next(), random.next())
        SharedCounter.add(sequenceWord, 1)  // even: whole
    }

    /// Every area made so far, current or draining.
    public func allAreas() -> SlotTable {
        view(areas: Array(0..<Int(header.pointee.areaCount)))
    }

    /// The master's table: every external slot idle, every hosted slot empty until its
    /// process starts. The region keeps room for apps a HUP may add (sparse: free until used).
    public static func create(for config: Configuration) throws(SystemError) -> SlotTable {
        let capacity = queueCapacity(config.server)
        let needed = config.apps.reduce(0) { $0 + areaSize(slots: $1.slotCount, queue: capacity) }
        let memory = try SharedMemory.create(size: firstAppOffset + needed + max(64 << 20, 4 * needed))
        var random = SystemRandomNumberGenerator()
        memory.base.bindMemory(to: RegionHeader.self, capacity: 1).pointee =
            RegionHeader(magic: magic, areaCount: 0, workerCapacity: Int64(workerCapacity), end: Int64(firstAppOffset),
                         ticketKey: (random.next(), random.next(), random.next(), random.next(), random.next(),
                                     random.next(), random.next(), random.next(), random.next(), random.next()))
        let table = SlotTable(memory: memory, areas: [])
        for i in 0..<workerCapacity { table.workers[i] = WorkerRecord() }
        var areas: [Int] = []
        for app in config.apps { areas.append(try table.addArea(for: app, queue: capacity)) }
        return table.view(areas: areas)
    }

    /// Master only: a new area for `app` at the end of the region; returns its index.
    public func addArea(for app: AppConfig, queue capacity: Int) throws(SystemError) -> Int {
        let size = Self.areaSize(slots: app.slotCount, queue: capacity)
        let index = Int(header.pointee.areaCount)
        let at = Int(header.pointee.end)
        guard index < Self.areaCapacity, at + size <= memory.size else {
            throw SystemError(errno: 28, "the shared slot table has no room for app \(app.name) (restart gatewayd to lay it out afresh)")
        }
        let p = memory.base + at
        SharedMutex.initialize(p)
        let record = (p + Self.align(SharedMutex.size)).bindMemory(to: AppRecord.self, capacity: 1)
        record.pointee = AppRecord()
        record.pointee.slotCount = Int64(app.slotCount)
        record.pointee.queueCapacity = Int64(capacity)
        if case .hosted = app.kind { record.pointee.hosted = 1 }
        let area = Self.area(at: p)
        let servers = app.servers
        record.pointee.serverCount = Int64(max(1, servers.count))
        var first = 0
        for s in area.slotIndices {
            area.slots[s] = SlotRecord()
            if record.pointee.hosted == 0 { area.slots[s].state = SlotState.idle.rawValue }
            guard !servers.isEmpty else { continue }
            let k = AppConfig.server(ofSlot: s, servers)
            if s > 0 && k != area.slots[s - 1].server { first = s }
            area.slots[s].server = Int64(k)
            area.slots[s].serverFirst = Int64(first)
            area.slots[s].weight = Int64(max(1, servers[k].weight))
            if s - first >= servers[k].maxConns { area.slots[s].disabled = 1 }  // until it says it takes more
        }
        record.pointee.usableSlots = Int64(area.slotIndices.filter { area.slots[$0].disabled == 0 }.count)
        for w in 0..<capacity { area.waiters[w] = WaiterRecord() }
        offsets[index] = Int64(at)
        header.pointee.end = Int64(at + size)
        header.pointee.areaCount = Int64(index + 1)
        return index
    }

    /// A worker's view of the master's table, from the inherited fd: `areas` are its
    /// apps' areas (the master says which; by default the first ones, in order).
    public static func attach(_ fd: FileDescriptor, config: Configuration, areas: [Int]? = nil) throws(SystemError) -> SlotTable {
        let memory = try SharedMemory.map(fd)
        let header = memory.base.bindMemory(to: RegionHeader.self, capacity: 1).pointee
        let areas = areas ?? Array(config.apps.indices)
        guard header.magic == magic, areas.count == config.apps.count, areas.allSatisfy({ $0 >= 0 && $0 < Int(header.areaCount) }) else {
            throw SystemError(errno: 22, "the shared slot table does not match the configuration")
        }
        let table = SlotTable(memory: memory, areas: areas)
        for (area, app) in zip(table.apps, config.apps) where area.slotCount != app.slotCount {
            throw SystemError(errno: 22, "the shared slot table has \(area.slotCount) slots for app \(app.name), the configuration \(app.slotCount)")
        }
        return table
    }

    /// Runs `body` with the app's lock held.
    @discardableResult
    public func withLock<T>(_ app: Int, _ body: (AppArea) -> T) -> T {
        let area = apps[app]
        SharedMutex.lock(area.lock)
        defer { SharedMutex.unlock(area.lock) }
        return body(area)
    }
}
