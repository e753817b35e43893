import GatewaySystem

/// The request metrics every worker adds to, in the shared region (Prometheus counters
/// need one number across all workers, and workers come and go). Fixed size: up to
/// `routeCapacity` route labels and `appCapacity` apps; plain UInt64 words updated with
/// atomic adds, so recording takes no lock.
///
/// A route entry is claimed by the first worker that needs its label (state 0 -> 1 by
/// compare-and-swap, label written, then 2); two workers racing may claim two entries
/// for one label, which the reader merges.
///
/// @unchecked Sendable: every field is a `let` (pointers into the shared region); the
/// words they point at change only by atomic operations (SharedCounters).
public final class MetricsArea: @unchecked Sendable {
    public static let routeCapacity = 64
    public static let appCapacity = 64
    public static let labelBytes = 64
    /// Latency buckets (seconds), as Prometheus client libraries default them.
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Statuses counted one by one; others go to their class ("2xx" ... "5xx").
    public static let statuses = [200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408,
                                  412, 413, 414, 416, 417, 429, 431, 499, 500, 501, 502, 503, 504]
    public static let statusSlots = statuses.count + 5

    // Words per entry: state, label, status counts, histogram buckets (+Inf last), sum in microseconds.
    static let labelWords = labelBytes / 8
    static let histogramWords = buckets.count + 1 + 1
    static let routeWords = 1 + labelWords + statusSlots + histogramWords
    static let appWords = histogramWords

    public static var size: Int { (routeCapacity * routeWords + appCapacity * appWords) * 8 }

    let base: UnsafeMutablePointer<UInt64>

    init(at p: UnsafeMutableRawPointer) {
        base = p.bindMemory(to: UInt64.self, capacity: Self.size / 8)
    }

    func route(_ i: Int) -> UnsafeMutablePointer<UInt64> { base + i * Self.routeWords }
    func app(_ i: Int) -> UnsafeMutablePointer<UInt64> { base + Self.routeCapacity * Self.routeWords + i * Self.appWords }

    public static func statusIndex(_ status: Int) -> Int {
        if let i = statuses.firstIndex(of: status) { return i }
        return statuses.count + max(0, min(4, status / 100 - 1))
    }

    public static func statusLabel(_ index: Int) -> String {
        index < statuses.count ? String(statuses[index]) : "\(index - statuses.count + 1)xx"
    }

    /// The entry for `label` (found or claimed); nil when every entry is taken.
    public func routeEntry(for label: String) -> Int? {
        let bytes = Array(label.utf8.prefix(Self.labelBytes))
        for i in 0..<Self.routeCapacity {
            let e = route(i)
            switch SharedCounter.load(e) {
            case 2:
                if self.label(of: e) == bytes { return i }
            case 0:
                guard SharedCounter.compareExchange(e, 0, 1) else { continue }
                let raw = UnsafeMutableRawPointer(e + 1)
                raw.initializeMemory(as: UInt8.self, repeating: 0, count: Self.labelBytes)
                raw.copyMemory(from: bytes, byteCount: bytes.count)
                _ = SharedCounter.compareExchange(e, 1, 2)
                return i
            default:
                continue  // being claimed right now: take another entry
            }
        }
        return nil
    }

    func label(of e: UnsafeMutablePointer<UInt64>) -> [UInt8] {
        let raw = UnsafeRawPointer(e + 1)
        let all = UnsafeRawBufferPointer(start: raw, count: Self.labelBytes)
        return Array(all.prefix { $0 != 0 })
    }

    public func recordRequest(entry: Int, status: Int, seconds: Double) {
        let e = route(entry)
        SharedCounter.add(e + 1 + Self.labelWords + Self.statusIndex(status), 1)
        Self.observe(e + 1 + Self.labelWords + Self.statusSlots, seconds)
    }

    public func recordQueueWait(app: Int, seconds: Double) {
        guard app < Self.appCapacity else { return }
        Self.observe(self.app(app), seconds)
    }

    static func observe(_ h: UnsafeMutablePointer<UInt64>, _ seconds: Double) {
        let bucket = buckets.firstIndex { seconds <= $0 } ?? buckets.count
        SharedCounter.add(h + bucket, 1)
        SharedCounter.add(h + buckets.count + 1, UInt64(max(0, seconds) * 1_000_000))
    }

    /// A histogram as read: per-bucket counts (not cumulative, +Inf last) and the sum in seconds.
    public struct Histogram {
        public var counts: [UInt64]
        public var sum: Double
        public var count: UInt64 { counts.reduce(0, +) }

        mutating func merge(_ o: Histogram) {
            for i in counts.indices { counts[i] += o.counts[i] }
            sum += o.sum
        }
    }

    static func readHistogram(_ h: UnsafeMutablePointer<UInt64>) -> Histogram {
        Histogram(counts: (0...buckets.count).map { SharedCounter.load(h + $0) },
                  sum: Double(SharedCounter.load(h + buckets.count + 1)) / 1_000_000)
    }

    /// Every route label with its status counts and latency, entries of one label merged.
    public func routes() -> [(label: String, statuses: [UInt64], latency: Histogram)] {
        var out: [(label: String, statuses: [UInt64], latency: Histogram)] = []
        for i in 0..<Self.routeCapacity {
            let e = route(i)
            guard SharedCounter.load(e) == 2 else { continue }
            let label = String(decoding: label(of: e), as: UTF8.self)
            let statuses = (0..<Self.statusSlots).map { SharedCounter.load(e + 1 + Self.labelWords + $0) }
            let latency = Self.readHistogram(e + 1 + Self.labelWords + Self.statusSlots)
            if let j = out.firstIndex(where: { $0.label == label }) {
                for k in statuses.indices { out[j].statuses[k] += statuses[k] }
                out[j].latency.merge(latency)
            } else {
                out.append((label, statuses, latency))
            }
        }
        return out
    }

    public func queueWait(app: Int) -> Histogram? {
        app < Self.appCapacity ? Self.readHistogram(self.app(app)) : nil
    }
}
