import Exchanges
import GatewaySystem

/// What the master's server watch (ServerWatch) writes into a connect app's records:
/// probe outcomes, learned capacities, looked-up addresses. Every function runs under
/// the app's lock (`SlotTable.withLock`); per-server fields sit on the server's first slot.
extension AppArea {
    public enum ProbeChange: Equatable, Sendable {
        /// A server that was down answered: it takes requests again.
        case back
        /// Failed probes marked it down for this long.
        case markedDown(Double)
    }

    func firstSlot(ofServer k: Int) -> Int? {
        slotIndices.first { slots[$0].server == Int64(k) }
    }

    /// Whether server `k` has requests in flight while it is up (then they tell its
    /// health, and a probe is not sent).
    public func inFlight(server k: Int, now: Double) -> Bool {
        guard let f = firstSlot(ofServer: k), slots[f].downUntil <= now else { return false }
        return slotIndices.contains { slots[$0].serverFirst == Int64(f) && slots[$0].state == SlotState.busy.rawValue }
    }

    /// A good probe brings a down server back at once (its slots too); a failed one
    /// counts as a failure in a row, as a failed request does (`serverOutcome`), and keeps
    /// a server that is already down out until the next probe may bring it back, so no
    /// request is spent finding out what the probe knows. `untilNextProbe`: the seconds
    /// until that probe has had its time.
    public func probeOutcome(server k: Int, up: Bool, maxFails: Int, failTimeout: Double, untilNextProbe: Double,
                             now: Double) -> ProbeChange? {
        guard record.pointee.serverCount > 1, let f = firstSlot(ofServer: k) else { return nil }
        guard !up else {
            let wasDown = slots[f].downUntil > now
            slots[f].failures = 0
            guard wasDown else { return nil }
            slots[f].downUntil = 0
            slots[f].downCount = 0
            for s in slotIndices where slots[s].serverFirst == Int64(f) { slots[s].unavailableUntil = 0 }
            dispatch(now: now)  // requests waiting for a slot may take one of its slots now
            return .back
        }
        if slots[f].downUntil > now {
            slots[f].failedTotal += 1
            slots[f].lastError = Int64(ServerFault.probe.rawValue)
            let until = max(slots[f].downUntil, now + untilNextProbe)
            slots[f].downUntil = until
            for s in slotIndices where slots[s].serverFirst == Int64(f) { slots[s].unavailableUntil = max(slots[s].unavailableUntil, until) }
            return nil
        }
        return serverOutcome(f, .probe, maxFails: maxFails, failTimeout: failTimeout, now: now).map { .markedDown($0) }
    }

    /// The capacity server `k` says it has: that many of its slots may be used, at
    /// least one and at most the slots made for it. Returns the capacity now in force
    /// when it changed.
    public func setCapacity(server k: Int, _ capacity: Int, now: Double) -> Int? {
        guard let f = firstSlot(ofServer: k) else { return nil }
        let mine = slotIndices.filter { slots[$0].serverFirst == Int64(f) }
        let n = max(1, min(capacity, mine.count))
        slots[f].learnedCapacity = Int64(capacity)
        let before = mine.filter { slots[$0].disabled == 0 }.count
        guard n != before else { return nil }
        for (i, s) in mine.enumerated() {
            let disable: Int64 = i < n ? 0 : 1
            if disable == 1 && slots[s].keeper != 0 { slots[s].reclaim = 1 }  // its keeper closes the kept connection
            slots[s].disabled = disable
        }
        record.pointee.usableSlots += Int64(n - before)
        dispatch(now: now)
        return n
    }

    /// Server `k`'s host name now has this address: whether that changed it, and
    /// whether it is the first address known.
    public func setResolved(server k: Int, _ a: Socket.PackedAddress) -> (changed: Bool, first: Bool) {
        guard let f = firstSlot(ofServer: k) else { return (false, false) }
        let r = slots[f]
        guard r.resolvedFamily != a.family || r.resolvedHigh != a.high || r.resolvedLow != a.low else { return (false, false) }
        slots[f].resolvedFamily = a.family
        slots[f].resolvedHigh = a.high
        slots[f].resolvedLow = a.low
        slots[f].resolvedVersion += 1
        return (true, r.resolvedVersion == 0)
    }

    /// Server `k`'s address as last looked up (nil: never).
    public func resolved(server k: Int) -> Socket.PackedAddress? {
        guard let f = firstSlot(ofServer: k), slots[f].resolvedVersion > 0 else { return nil }
        return Socket.PackedAddress(family: slots[f].resolvedFamily, high: slots[f].resolvedHigh, low: slots[f].resolvedLow)
    }
}
