import GatewayConfig
import GatewaySystem

// New app code or settings without downtime: a HUP whose [[app]] sections changed
// (AppPlan in AppGenerations.swift says which), or
// `gatewayd reload-app NAME`, replaces a hosted app's processes one slot at a time. Each
// old process takes no new request, finishes the one it holds, and is stopped; a process
// with the new settings starts on the same socket (connections queued meanwhile wait in
// its backlog), and only when it runs does the next slot follow. So the app is never
// more than one process below `processes`, and no request is refused.

/// One app's rolling restart: the slots still to replace, and the one being replaced.
struct Rollout {
    var pending: [Int]
    var current: (slot: Int, pid: Int64)? = nil
    let why: String
}

extension AppSupervisor {
    /// Starts replacing every process of app `i` (a second request while one runs
    /// starts over with the slots not yet done, and those done, again).
    public func rollingRestart(_ i: Int, why: String) {
        let slots = Array(0..<config.apps[i].slotCount)
        if var r = rollouts[i] {
            r.pending = slots.filter { $0 != r.current?.slot }
            rollouts[i] = r
        } else {
            rollouts[i] = Rollout(pending: slots, why: why)
        }
        logger.info("app \(config.apps[i].name): replacing its processes one at a time (\(why))")
    }

    /// One step of a rolling restart, each master turn: once the slot being replaced
    /// serves with a new process (or, for dynamic and ondemand apps, stays empty), the
    /// next slot's process is taken out.
    func advanceRollout(_ i: Int) {
        guard var r = rollouts[i] else { return }
        if let c = r.current {
            let (pid, serving) = table.withLock(i) { a in a.processOf(c.slot) }
            var staticMode = false
            if case .hosted(_, let pm) = config.apps[i].kind { staticMode = pm.mode == .static }
            let replaced = pid != 0 ? pid != c.pid && serving : !staticMode
            guard replaced else { return }
            r.current = nil
        }
        while r.current == nil, let s = r.pending.first {
            r.pending.removeFirst()
            let old = table.withLock(i) { a in a.markForReplacement(s) }
            if old != 0 {
                r.current = (s, old)
                logger.info("app \(config.apps[i].name): replacing process \(old) (slot \(s))")
            }
        }
        if r.current == nil {
            rollouts[i] = nil
            logger.info("app \(config.apps[i].name): every process replaced (\(r.why))")
        } else {
            rollouts[i] = r
        }
    }
}
