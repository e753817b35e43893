import GatewaySystem

/// The slot table's decisions, made under an app's lock on its shared records: which
/// slot a request gets, the FIFO queue of waiters, grants, releases and reclaims. Pure
/// functions of the records (SlotTable.swift holds their layout and the region).
// MARK: - Decisions made under the lock (pure: records in, records out)

extension AppArea {
    /// A slot `pid` may take now: its own kept connection first (the process behind
    /// it is idle and the connection is open), else the lowest free idle slot, so that
    /// load concentrates on few processes and the rest can idle and retire.
    public func pickSlot(for pid: Int64, now: Double, avoid: Int64 = 0) -> Int? {
        if record.pointee.serverCount > 1 { return pickServerSlot(for: pid, now: now, avoid: avoid) }
        var free: Int? = nil
        for s in slotIndices {
            let slot = slots[s]
            guard slot.state == SlotState.idle.rawValue, slot.unavailableUntil <= now, slot.disabled == 0 else { continue }
            if slot.keeper == pid { return s }
            if slot.keeper == 0 && free == nil { free = s }
        }
        return free
    }

    public func take(_ s: Int, for pid: Int64, now: Double) {
        slots[s].state = SlotState.busy.rawValue
        slots[s].owner = pid
        slots[s].busySince = now
        slots[Int(slots[s].serverFirst)].picks += 1
        record.pointee.accepted += 1
    }

    /// Grants free slots to waiters in arrival order; stops at the first waiter that
    /// cannot be served (strict FIFO), except one that only its avoided servers could
    /// serve now (a retry that waits for another server): the waiters behind it may take
    /// what it will not (at most `avoidScan` such are passed). Each granted waiter is
    /// woken on its own word.
    public func dispatch(now: Double) {
        let r = record
        skipServed()
        let capacity = r.pointee.queueCapacity
        var t = r.pointee.queueHead
        var passed = 0
        while t < r.pointee.queueTail {
            let w = waiters[Int(t % capacity)]
            guard w.ticket == t && w.state == WaiterState.waiting.rawValue else { t += 1; continue }
            if let s = pickSlot(for: w.pid, now: now, avoid: w.avoid) {
                grant(t, slot: s, now: now)
            } else {
                guard w.avoid != 0 && passed < Self.avoidScan else { break }
                passed += 1
            }
            t += 1
        }
    }

    /// Waiters with servers to avoid that dispatch looks past, at most.
    static let avoidScan = 64

    /// Moves the head past tickets no longer waiting (granted out of order by a hand-off,
    /// cancelled, or cleared), so the head is always a live waiter and the scans that
    /// start there (ownWaiter, dispatch) do not walk over a growing run of holes.
    func skipServed() {
        let r = record
        var head = r.pointee.queueHead
        let tail = r.pointee.queueTail, capacity = r.pointee.queueCapacity
        guard head < tail else { return }
        var i = Int(head % capacity)
        while head < tail && !(waiters[i].ticket == head && waiters[i].state == WaiterState.waiting.rawValue) {
            head += 1
            i += 1
            if i == Int(capacity) { i = 0 }
        }
        r.pointee.queueHead = head
    }

    /// Joins the queue; nil when it is full.
    public func enqueue(_ pid: Int64, notify: Bool = false, now: Double = 0, avoid: Int64 = 0) -> Int64? {
        let r = record
        let ticket = r.pointee.queueTail
        let i = Int(ticket % r.pointee.queueCapacity)
        guard waiters[i].state == WaiterState.free.rawValue else { return nil }
        let word = waiters[i].word
        waiters[i] = WaiterRecord(ticket: ticket, pid: pid, state: WaiterState.waiting.rawValue, slot: -1, word: word, notify: notify ? 1 : 0,
                                  since: now, avoid: avoid)
        r.pointee.queueTail += 1
        r.pointee.queueLength += 1
        r.pointee.queueMax = max(r.pointee.queueMax, r.pointee.queueLength)
        return ticket
    }

    /// The futex word of `ticket`'s queue entry (read under the lock before sleeping on it).
    public func waiterWord(_ ticket: Int64) -> UInt32 { waiters[Int(ticket % record.pointee.queueCapacity)].word }

    public func waiterWordPointer(_ ticket: Int64) -> UnsafeMutablePointer<UInt32> {
        let i = Int(ticket % record.pointee.queueCapacity)
        return UnsafeMutableRawPointer(waiters + i).advanced(by: MemoryLayout<WaiterRecord>.offset(of: \WaiterRecord.word)!)
            .assumingMemoryBound(to: UInt32.self)
    }

    /// The slot granted to `ticket` (its queue entry is freed), or nil if still waiting.
    public func collect(_ ticket: Int64) -> Int? {
        let i = Int(ticket % record.pointee.queueCapacity)
        guard waiters[i].ticket == ticket, waiters[i].state == WaiterState.granted.rawValue else { return nil }
        waiters[i].state = WaiterState.free.rawValue
        return Int(waiters[i].slot)
    }

    /// Leaves the queue (timed out). Returns a slot if one was granted meanwhile.
    public func cancel(_ ticket: Int64) -> Int? {
        if let s = collect(ticket) { return s }
        let i = Int(ticket % record.pointee.queueCapacity)
        if waiters[i].ticket == ticket && waiters[i].state == WaiterState.waiting.rawValue {
            waiters[i].state = WaiterState.free.rawValue
            record.pointee.queueLength -= 1
            skipServed()
        }
        return nil
    }

    /// Asks one keeper of an idle kept connection to give it back; returns its pid to signal.
    public func requestReclaim(excluding pid: Int64) -> Int64? {
        for s in slotIndices {
            let slot = slots[s]
            if slot.state == SlotState.idle.rawValue && slot.keeper != 0 && slot.keeper != pid && slot.reclaim == 0 {
                slots[s].reclaim = 1
                return slot.keeper
            }
        }
        return nil
    }

    /// Ends `pid`'s use of slot `s`. `keep`: it keeps the connection open (keep_conn).
    /// Returns whether it may really keep it, and whether the master should act (a
    /// process to retire).
    /// `handOff`: a waiter of `pid` near the front may get the slot directly (not for a dead worker).
    public func release(_ s: Int, by pid: Int64, generation: Int64, keep: Bool, countRequest: Bool, now: Double,
                        handOff: Bool = true) -> (kept: Bool, retire: Bool, handedTo: Int64?) {
        var slot = slots[s]
        guard slot.state == SlotState.busy.rawValue, slot.owner == pid else { return (false, false, nil) }
        let sameProcess = slot.generation == generation
        if countRequest && sameProcess { slot.requests += 1 }
        // max_requests: retire the process, but never two of an app's at once, so a
        // recycle never leaves the app without processes.
        if slot.requestLimit > 0 && slot.requests >= slot.requestLimit && slot.processPID != 0 && !retiring(besides: s) {
            slot.retire = 1
        }
        slot.owner = 0
        slot.idleSince = now
        var kept = false
        if slot.retire == 1 {
            slot.state = SlotState.retiring.rawValue
            slot.keeper = 0
        } else if record.pointee.hosted == 1 && slot.processPID == 0 {
            slot.state = SlotState.empty.rawValue  // its process died and is not back yet
            slot.keeper = 0
        } else {
            slot.state = SlotState.idle.rawValue
            // A request of this same worker waits near the front of the queue: the slot
            // (and its open connection) goes straight to it. No other worker is woken,
            // no connection is closed and opened again, and an older waiter of another
            // worker is passed over by a bounded number of grants (see ownWaiter).
            if handOff, let t = ownWaiter(pid, now: now), slot.unavailableUntil <= now {
                let keepIt = keep && sameProcess
                slot.keeper = keepIt ? pid : 0
                slot.reclaim = 0
                slots[s] = slot
                grant(t, slot: s, now: now)
                return (keepIt, false, t)
            }
            // Park the connection only if nobody else waits: a waiter gets the slot now.
            kept = keep && sameProcess && slot.reclaim == 0 && record.pointee.queueLength == 0
            slot.keeper = kept ? pid : 0
        }
        slot.reclaim = 0
        let retire = slot.retire == 1
        slots[s] = slot
        dispatch(now: now)
        return (kept, retire, nil)
    }

    /// How long the oldest waiter may have waited and still be passed over by up to
    /// `wideWindow` grants; past it, by fewer than the usable slots. Each grant to another worker
    /// costs a close and a new connect (an app process serves one connection at a time,
    /// so a kept connection cannot stay open beside the other worker's): for short
    /// requests that is a large part of their cost, for long ones nothing, and only long
    /// ones make a waiter wait long. At -c64 on 4 slots and 2 workers (C hello), the
    /// strict window left 26% of requests on a new app connection, this one almost none
    /// (4 connects in 67k requests), with about a sixth more throughput and p99 within
    /// the noise; a wide window without the patience (16 x slotCount) made p99 spike.
    static let handOffPatience = 0.010
    var wideWindow: Int { 8 * usableSlots }
    var usableSlots: Int { max(1, Int(record.pointee.usableSlots)) }

    /// The ticket of `pid`'s oldest waiting request, if it is close enough behind the
    /// oldest live waiter: less than `wideWindow` tickets while that one has waited under
    /// `handOffPatience`, else less than the usable slots. Bounded unfairness: the oldest waiter
    /// can be passed over only by the tickets right behind it, whoever keeps releasing.
    func ownWaiter(_ pid: Int64, now: Double) -> Int64? {
        let head = record.pointee.queueHead, tail = record.pointee.queueTail
        let capacity = Int(record.pointee.queueCapacity)
        guard head < tail else { return nil }
        // The head is the oldest live waiter (skipServed keeps it there).
        let window = now - waiters[Int(head % Int64(capacity))].since < Self.handOffPatience ? wideWindow : usableSlots
        var i = Int(head % Int64(capacity))
        for t in head..<min(tail, head + Int64(window)) {
            let w = waiters + i
            if w.pointee.pid == pid && w.pointee.ticket == t && w.pointee.state == WaiterState.waiting.rawValue { return t }
            i += 1
            if i == capacity { i = 0 }
        }
        return nil
    }

    /// Gives slot `s` to the waiter holding `ticket` and wakes it: its futex word, or a
    /// signal for an event loop of another process (SIGUSR2).
    func grant(_ ticket: Int64, slot s: Int, now: Double) {
        let i = Int(ticket % record.pointee.queueCapacity)
        take(s, for: waiters[i].pid, now: now)
        waiters[i].state = WaiterState.granted.rawValue
        waiters[i].slot = Int64(s)
        let word = waiterWordPointer(ticket)
        word.pointee &+= 1
        if waiters[i].notify == 1 {
            if waiters[i].pid != SlotTable.ownPID { _ = Processes.signal(Int32(waiters[i].pid), Signals.usr2) }
        } else {
            Futex.wakeAll(word)
        }
        record.pointee.queueLength -= 1
        if ticket == record.pointee.queueHead { skipServed() }
    }

    func retiring(besides s: Int) -> Bool {
        slotIndices.contains { $0 != s && (slots[$0].state == SlotState.retiring.rawValue || slots[$0].retire == 1) }
    }

    /// Frees everything a dead worker held: its slots, kept connections and queue entries.
    public func releaseAll(of pid: Int64, now: Double) {
        for s in slotIndices {
            if slots[s].keeper == pid { slots[s].keeper = 0; slots[s].reclaim = 0 }
            if slots[s].state == SlotState.busy.rawValue && slots[s].owner == pid {
                _ = release(s, by: pid, generation: -1, keep: false, countRequest: false, now: now, handOff: false)
            }
        }
        let r = record
        for t in r.pointee.queueHead..<r.pointee.queueTail {
            let i = Int(t % r.pointee.queueCapacity)
            guard waiters[i].ticket == t, waiters[i].pid == pid else { continue }
            if let s = cancel(t) { _ = release(s, by: pid, generation: -1, keep: false, countRequest: false, now: now, handOff: false) }
        }
        // Granted entries the worker never collected sit before the head.
        for i in 0..<Int(r.pointee.queueCapacity) where waiters[i].pid == pid && waiters[i].state == WaiterState.granted.rawValue {
            waiters[i].state = WaiterState.free.rawValue
            _ = release(Int(waiters[i].slot), by: pid, generation: -1, keep: false, countRequest: false, now: now, handOff: false)
        }
        dispatch(now: now)
    }

    /// Counts for the status page and the process manager.
    public func census() -> (running: Int, idle: Int, busy: Int) {
        var running = 0, idle = 0, busy = 0
        for s in slotIndices {
            let slot = slots[s]
            let hasProcess = slot.processPID != 0
            if hasProcess { running += 1 }
            if slot.state == SlotState.busy.rawValue { busy += 1 }
            else if slot.state == SlotState.idle.rawValue && slot.disabled == 0 { idle += 1 }
        }
        return (running, idle, busy)
    }
}
