import GatewayConfig
import GatewaySystem
import AppPool

/// A HUP that adds, removes or re-lays-out apps: a new generation of the apps beside
/// the old one while the old workers drain, as the workers themselves do.
///
/// An app the new configuration keeps with the same layout (kind, slots, servers) keeps
/// its slot table area and its processes; the new workers share them with the old ones.
/// A new app, or one whose layout changed (more processes, other max_conns), gets a
/// new area in the table and its own processes and sockets. An app removed, or laid
/// out anew, keeps its old area and processes for the old workers (a draining
/// supervisor starts and replaces nothing), and is stopped when the last of them is gone.
struct AppPlan {
    /// New app index -> the old app index it continues.
    var kept: [Int: Int] = [:]
    /// New apps whose processes are replaced one at a time (changed command, env ...).
    var restarts: [Int] = []
    /// New apps that need a new area.
    var added: [Int] = []
    /// Old apps that drain and stop.
    var removed: [Int] = []

    static func make(old: [AppConfig], new: [AppConfig]) -> AppPlan {
        var plan = AppPlan()
        for (i, b) in new.enumerated() {
            guard let j = old.firstIndex(where: { $0.name == b.name }), sameLayout(old[j], b) else {
                plan.added.append(i)
                continue
            }
            plan.kept[i] = j
            if case .hosted(let c1, _) = old[j].kind, case .hosted(let c2, _) = b.kind {
                let a = old[j]
                if c1 != c2 || a.env != b.env || a.envCopy != b.envCopy || a.cwd != b.cwd || a.user != b.user || a.group != b.group {
                    plan.restarts.append(i)
                }
            }
        }
        let continued = Set(plan.kept.values)
        plan.removed = old.indices.filter { !continued.contains($0) }
        return plan
    }

    /// Whether the same area serves both: the same kind and slots, and for a connect app
    /// the same servers' slots and weights (the area's records hold them; addresses and
    /// every other setting reach new workers through their configuration).
    static func sameLayout(_ a: AppConfig, _ b: AppConfig) -> Bool {
        switch (a.kind, b.kind) {
        case (.hosted(_, let p1), .hosted(_, let p2)):
            return p1.maxProcesses == p2.maxProcesses
        case (.external(let s1), .external(let s2)):
            return s1.map(\.slots) == s2.map(\.slots) && s1.map(\.weight) == s2.map(\.weight)
                && s1.map(\.maxConns) == s2.map(\.maxConns)
        default:
            return false
        }
    }

    var changesApps: Bool { !added.isEmpty || !removed.isEmpty }
}

extension AppSupervisor {
    /// Moves to the next generation: `config` and `table` (its view) from now on; kept apps
    /// keep their processes, sockets and rollouts under their new indices. The apps not
    /// kept move, with their processes, to the returned supervisor, which only drains.
    func regenerate(config new: Configuration, table view: SlotTable, plan: AppPlan) -> AppSupervisor? {
        let old = (config: config, table: table, states: states)
        var drain: AppSupervisor? = nil
        if !plan.removed.isEmpty {
            var drained = old.config
            drained.apps = plan.removed.map { old.config.apps[$0] }
            let d = AppSupervisor(config: drained, table: old.table.view(areas: plan.removed.map { old.table.areaIndices[$0] }),
                                  runDirectory: runDirectory, executable: executable, logger: logger)
            d.draining = true
            d.states = plan.removed.map { old.states[$0] }
            for (pid, child) in children {
                guard let k = plan.removed.firstIndex(of: child.app) else { continue }
                var moved = child
                moved.app = k
                d.children[pid] = moved
                children[pid] = nil
            }
            drain = d
        }
        let newIndex = Dictionary(uniqueKeysWithValues: plan.kept.map { ($1, $0) })  // old -> new
        config = new
        table = view
        states = new.apps.indices.map { i in
            plan.kept[i].map { old.states[$0] }
                ?? AppState(sockets: Array(repeating: nil, count: new.apps[i].slotCount), everStarted: Array(repeating: false, count: new.apps[i].slotCount))
        }
        for (pid, child) in children { children[pid]?.app = newIndex[child.app] ?? child.app }
        rollouts = Dictionary(uniqueKeysWithValues: rollouts.compactMap { k, r in newIndex[k].map { ($0, r) } })
        return drain
    }

    /// A draining supervisor's end: TERM to its processes (KILL after each app's
    /// kill_grace, at later calls), and once none is left, its sockets closed and
    /// removed. Returns true when it is done.
    func drainStep(now: Double) -> Bool {
        for (pid, var child) in children {
            if let t = child.termSentAt {
                if now - t > config.apps[child.app].killGrace { Processes.signal(pid, Signals.kill) }
                continue
            }
            Processes.signal(pid, Signals.term)
            child.termSentAt = now
            children[pid] = child
        }
        guard children.isEmpty else { return false }
        closeSockets()
        return true
    }
}
