import GatewayConfig
import GatewaySystem

// The slot table: what the master and every worker share about each app, in one
// MAP_SHARED region. Each app has a fixed number of connection slots (one per hosted
// process, or max_conns for an external app) and a FIFO queue of requests waiting for
// one. Every change happens under the app's robust process-shared mutex; each waiter
// sleeps on the futex word of its queue entry, which its grant bumps.
//
// Layout: [RegionHeader][WorkerRecord x workerCapacity], then per app, 64-byte aligned:
// [mutex][AppRecord][SlotRecord x slots][WaiterRecord x queueCapacity].
// Master and workers compute the same layout from the same configuration.

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
    var appCount: Int64
    var workerCapacity: Int64
}

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
/// lock), and read by status pages as plain integers (a momentary view).
public final class SlotTable: @unchecked Sendable {
    public static let workerCapacity = 1024
    static let magic: Int64 = 0x6761_7465_7761_7964  // "gatewayd"

    public let memory: SharedMemory
    public let apps: [AppArea]
    public let workers: UnsafeMutablePointer<WorkerRecord>
    /// Request counts and latencies, by route and app (/metrics).
    public let metrics: MetricsArea
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

    static var workersOffset: Int { align(MemoryLayout<RegionHeader>.stride) }
    static var metricsOffset: Int { workersOffset + align(workerCapacity * MemoryLayout<WorkerRecord>.stride) }
    static var firstAppOffset: Int { metricsOffset + align(MetricsArea.size) }

    static func areaSize(slots: Int, queue: Int) -> Int {
        align(SharedMutex.size) + align(MemoryLayout<AppRecord>.stride)
            + align(slots * MemoryLayout<SlotRecord>.stride) + align(queue * MemoryLayout<WaiterRecord>.stride)
    }

    /// Binds one app's area at `p`, sized by the counts stored in its record.
    static func area(at p: UnsafeMutableRawPointer) -> (AppArea, size: Int) {
        let lock = p
        let record = (p + align(SharedMutex.size)).bindMemory(to: AppRecord.self, capacity: 1)
        let slotCount = Int(record.pointee.slotCount)
        let queue = Int(record.pointee.queueCapacity)
        let slotsAt = p + align(SharedMutex.size) + align(MemoryLayout<AppRecord>.stride)
        let slots = slotsAt.bindMemory(to: SlotRecord.self, capacity: slotCount)
        let waiters = (slotsAt + align(slotCount * MemoryLayout<SlotRecord>.stride)).bindMemory(to: WaiterRecord.self, capacity: queue)
        return (AppArea(lock: lock, record: record, slots: slots, waiters: waiters), areaSize(slots: slotCount, queue: queue))
    }

    /// Walks the region: each app's record says how big its area is, so a worker with a
    /// reloaded configuration (other worker counts) still reads the table right.
    init(memory: SharedMemory, appCount: Int) {
        self.memory = memory
        workers = (memory.base + Self.workersOffset).bindMemory(to: WorkerRecord.self, capacity: Self.workerCapacity)
        metrics = MetricsArea(at: memory.base + Self.metricsOffset)
        var areas: [AppArea] = []
        var offset = Self.firstAppOffset
        for _ in 0..<appCount {
            let (area, size) = Self.area(at: memory.base + offset)
            areas.append(area)
            offset += size
        }
        apps = areas
    }

    /// The master's table: every external slot idle, every hosted slot empty until its process starts.
    public static func create(for config: Configuration) throws(SystemError) -> SlotTable {
        let capacity = queueCapacity(config.server)
        let size = firstAppOffset + config.apps.reduce(0) { $0 + areaSize(slots: $1.slotCount, queue: capacity) }
        let memory = try SharedMemory.create(size: size)
        memory.base.bindMemory(to: RegionHeader.self, capacity: 1).pointee =
            RegionHeader(magic: magic, appCount: Int64(config.apps.count), workerCapacity: Int64(workerCapacity))
        var offset = firstAppOffset
        for app in config.apps {
            let p = memory.base + offset
            SharedMutex.initialize(p)
            let record = (p + align(SharedMutex.size)).bindMemory(to: AppRecord.self, capacity: 1)
            record.pointee = AppRecord()
            record.pointee.slotCount = Int64(app.slotCount)
            record.pointee.queueCapacity = Int64(capacity)
            if case .hosted = app.kind { record.pointee.hosted = 1 }
            let (area, size) = Self.area(at: p)
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
            offset += size
        }
        let table = SlotTable(memory: memory, appCount: config.apps.count)
        for i in 0..<workerCapacity { table.workers[i] = WorkerRecord() }
        return table
    }

    /// A worker's view of the master's table, from the inherited fd.
    public static func attach(_ fd: FileDescriptor, config: Configuration) throws(SystemError) -> SlotTable {
        let memory = try SharedMemory.map(fd)
        let header = memory.base.bindMemory(to: RegionHeader.self, capacity: 1).pointee
        guard header.magic == magic, header.appCount == Int64(config.apps.count) else {
            throw SystemError(errno: 22, "the shared slot table does not match the configuration")
        }
        let table = SlotTable(memory: memory, appCount: config.apps.count)
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
