import Exchanges

/// A connect app with several servers: which one a request goes to, and their passive
/// health. The slots of one server follow one another; what is kept per server sits on
/// its first slot. Every function runs under the app's lock (`SlotTable.withLock`).
extension AppArea {
    /// The free slot of the server with the fewest requests in flight for its weight
    /// (nginx's least_conn with weights); ties go to the server given the fewest
    /// requests for its weight, so a light load is spread by weight too, then to a
    /// connection this worker keeps. A server that is down is passed over; so are those
    /// in `avoid` (a bit per server: where a retry's earlier tries failed) while any other
    /// server is up, even if the request must wait for its slot (trying again where it
    /// just failed would only fail again). When every server is down, they are all tried
    /// as if none were.
    func pickServerSlot(for pid: Int64, now: Double, avoid: Int64) -> Int? {
        let count = Int(record.pointee.serverCount)
        return withUnsafeTemporaryAllocation(of: Int64.self, capacity: count) { busy -> Int? in
            busy.initialize(repeating: 0)
            var allDown = true, otherUp = false
            for s in slotIndices {
                if slots[s].state == SlotState.busy.rawValue { busy[Int(slots[s].server)] += 1 }
                if Int(slots[s].serverFirst) == s && slots[s].downUntil <= now {
                    allDown = false
                    if !Self.avoids(avoid, slots[s].server) { otherUp = true }
                }
            }
            var best: Int? = nil
            for s in slotIndices {
                let slot = slots[s]
                guard slot.state == SlotState.idle.rawValue, slot.disabled == 0, slot.keeper == 0 || slot.keeper == pid else { continue }
                let down = slots[Int(slot.serverFirst)].downUntil > now
                guard slot.unavailableUntil <= now || (allDown && down) else { continue }
                guard !otherUp || !Self.avoids(avoid, slot.server) else { continue }
                guard let b = best else { best = s; continue }
                if better(s, than: b, busy: busy, pid: pid, avoid: avoid) { best = s }
            }
            return best
        }
    }

    static func avoids(_ mask: Int64, _ server: Int64) -> Bool { server < 64 && mask & (1 << server) != 0 }

    func better(_ s: Int, than b: Int, busy: UnsafeMutableBufferPointer<Int64>, pid: Int64, avoid: Int64) -> Bool {
        let x = slots[s], y = slots[b]
        let avoidX = Self.avoids(avoid, x.server), avoidY = Self.avoids(avoid, y.server)
        if avoidX != avoidY { return avoidY }
        if x.server == y.server { return x.keeper == pid && y.keeper != pid }
        // busy / weight, compared without division.
        let loadX = busy[Int(x.server)] * y.weight, loadY = busy[Int(y.server)] * x.weight
        if loadX != loadY { return loadX < loadY }
        let picksX = slots[Int(x.serverFirst)].picks * y.weight, picksY = slots[Int(y.serverFirst)].picks * x.weight
        if picksX != picksY { return picksX < picksY }
        return x.keeper == pid && y.keeper != pid
    }

    /// Passive health: a request on slot `s`'s server ended well (`.none`) or failed.
    /// `maxFails` failures in a row mark the server down for `failTimeout`, doubled each
    /// time it is marked down again (at most 8 times as long); a server back from being
    /// down is marked down again by one failure, and one success makes it healthy. One
    /// server alone is never marked down (there is nowhere else to go). Returns how long
    /// it was marked down for (nil: not marked).
    public func serverOutcome(_ s: Int, _ error: ServerFault, maxFails: Int, failTimeout: Double, now: Double) -> Double? {
        guard record.pointee.serverCount > 1 else { return nil }
        let f = Int(slots[s].serverFirst)
        guard error != .none else {
            slots[f].failures = 0
            slots[f].downCount = 0
            return nil
        }
        slots[f].failures += 1
        slots[f].failedTotal += 1
        slots[f].lastError = Int64(error.rawValue)
        guard slots[f].failures >= Int64(maxFails) || slots[f].downCount > 0, slots[f].downUntil <= now else { return nil }
        let period = failTimeout * Double(1 << Int(min(slots[f].downCount, 3)))
        slots[f].downCount += 1
        slots[f].failures = 0
        slots[f].downUntil = now + period
        for i in slotIndices where slots[i].serverFirst == Int64(f) { slots[i].unavailableUntil = max(slots[i].unavailableUntil, now + period) }
        return period
    }

    /// Per server, for the status page and /metrics: up, in flight, requests, failures,
    /// the last failure, and its connections (usable slots; what the server said, 0: nothing).
    public struct ServerRow: Sendable {
        public var server: Int
        public var up: Bool
        public var inFlight: Int
        public var picks: Int64
        public var failures: Int64
        public var lastError: ServerFault
        public var capacity: Int
        public var learnedCapacity: Int
    }

    public func serverRows(now: Double) -> [ServerRow] {
        var rows: [ServerRow] = []
        for s in slotIndices where Int(slots[s].serverFirst) == s {
            let k = Int(slots[s].server)
            let mine = slotIndices.filter { slots[$0].server == Int64(k) }
            rows.append(ServerRow(server: k, up: slots[s].downUntil <= now,
                                  inFlight: mine.filter { slots[$0].state == SlotState.busy.rawValue }.count,
                                  picks: slots[s].picks, failures: slots[s].failedTotal,
                                  lastError: ServerFault(rawValue: UInt8(truncatingIfNeeded: slots[s].lastError)) ?? .none,
                                  capacity: mine.filter { slots[$0].disabled == 0 }.count, learnedCapacity: Int(slots[s].learnedCapacity)))
        }
        return rows
    }
}
