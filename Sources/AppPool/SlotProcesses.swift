/// The slot changes the process manager makes (AppSupervisor, in the master): a process
/// started, retired or gone. Kept here with the other slot transitions (SlotDecisions),
/// so every change of a slot's state is written in this module; the supervisor only
/// decides when. Each runs under the app's lock (`SlotTable.withLock`).
extension AppArea {
    /// Slots with no process, idle slots with their idle time, and waiting requests.
    public func processSnapshot() -> (empty: [Int], idle: [(slot: Int, since: Double)], waiting: Int) {
        var empty: [Int] = []
        var idle: [(slot: Int, since: Double)] = []
        for s in slotIndices {
            let slot = slots[s]
            if slot.processPID == 0 { empty.append(s) }
            if slot.processPID != 0 && slot.state == SlotState.idle.rawValue { idle.append((s, slot.idleSince)) }
        }
        return (empty, idle, Int(record.pointee.queueLength))
    }

    /// Marks an idle slot's process retiring: no new requests go to it. Its pid, or 0
    /// when the slot was not idle (a request took it meanwhile).
    public func markRetiring(_ s: Int) -> Int64 {
        guard slots[s].state == SlotState.idle.rawValue else { return 0 }
        slots[s].state = SlotState.retiring.rawValue
        slots[s].keeper = 0
        return slots[s].processPID
    }

    /// A rolling restart takes slot `s`'s process out: no new request goes to it, and
    /// the master stops it (TERM) now if it is idle, or when its request ends; then a
    /// process with the new settings takes the slot. Its pid; 0 when it has none.
    public func markForReplacement(_ s: Int) -> Int64 {
        guard slots[s].processPID != 0 else { return 0 }
        if slots[s].state == SlotState.idle.rawValue {
            slots[s].state = SlotState.retiring.rawValue
            slots[s].keeper = 0
        } else if slots[s].state == SlotState.busy.rawValue {
            slots[s].retire = 1
        }
        return slots[s].processPID
    }

    /// Slot `s`'s process pid and whether the slot takes requests (idle or busy).
    public func processOf(_ s: Int) -> (pid: Int64, serving: Bool) {
        (slots[s].processPID, slots[s].state == SlotState.idle.rawValue || slots[s].state == SlotState.busy.rawValue)
    }

    /// Slot `s`'s process is to be ended when its request is released (it held one past
    /// request_timeout): no request goes to it again, and the master stops it (TERM, then
    /// KILL after kill_grace) and starts another. Its pid; 0 when the slot has another
    /// process by now (generation) or none.
    public func markForEnding(_ s: Int, generation: Int64) -> Int64 {
        guard slots[s].generation == generation, slots[s].processPID != 0 else { return 0 }
        slots[s].retire = 1
        return slots[s].processPID
    }

    /// The pid of slot `s`'s process while it is still the one of `generation`; 0 otherwise.
    public func processPID(_ s: Int, generation: Int64) -> Int64 {
        slots[s].generation == generation ? slots[s].processPID : 0
    }

    /// Processes marked retiring, with the request limit each reached (max_requests), if that is why.
    public func retiringProcesses() -> [(pid: Int32, slot: Int, recycled: Int64?)] {
        slotIndices.compactMap { s in
            let slot = slots[s]
            guard slot.state == SlotState.retiring.rawValue, slot.processPID != 0 else { return nil }
            let recycled = slot.requestLimit > 0 && slot.requests >= slot.requestLimit ? slot.requestLimit : nil
            return (Int32(slot.processPID), s, recycled)
        }
    }

    /// A new process serves slot `s`: a new generation (connections to the old one are
    /// never reused), counters reset, and the slot goes to the oldest waiter.
    public func processStarted(_ s: Int, pid: Int64, requestLimit: Int, restart: Bool, now: Double) {
        slots[s].processPID = pid
        slots[s].generation += 1
        slots[s].requests = 0
        slots[s].requestLimit = Int64(requestLimit)
        slots[s].retire = 0
        slots[s].startedAt = now
        slots[s].idleSince = now
        slots[s].keeper = 0
        slots[s].reclaim = 0
        if slots[s].state != SlotState.busy.rawValue { slots[s].state = SlotState.idle.rawValue }
        if restart { record.pointee.restarts += 1 }
        dispatch(now: now)
    }

    /// Slot `s`'s process `pid` is gone: the slot is empty until another starts (a busy
    /// slot stays busy until its request ends). Returns how many requests it served; 0
    /// when the slot already had another process.
    public func processExited(_ s: Int, pid: Int64) -> Int64 {
        guard slots[s].processPID == pid else { return 0 }
        let served = slots[s].requests
        slots[s].processPID = 0
        slots[s].generation += 1
        slots[s].keeper = 0
        slots[s].reclaim = 0
        slots[s].retire = 0
        if slots[s].state != SlotState.busy.rawValue { slots[s].state = SlotState.empty.rawValue }
        return served
    }
}
