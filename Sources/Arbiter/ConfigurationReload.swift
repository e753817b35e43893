import GatewayConfig
import GatewayLogging
import GatewaySystem
import AppPool

/// HUP: the new configuration for new workers, listeners opened and closed, the apps'
/// next generation (AppGenerations.swift), and the old workers drained.
extension Arbiter {
    /// HUP: read the configuration again. If it is invalid, keep serving with the old one
    /// and log why; else open new listeners, start the new workers first, then drain the old.
    func reloadConfiguration() {
        let new: Configuration
        do {
            new = try reload()
        } catch {
            logger.error("HUP: the new configuration is invalid; still serving with the old one:\n\(error)")
            return
        }
        let plan = AppPlan.make(old: config.apps, new: new.apps)
        // New apps (and apps laid out anew) get their areas first: that is what can fail.
        var areas = new.apps.indices.map { plan.kept[$0].map { table.areaIndices[$0] } ?? -1 }
        do {
            for i in plan.added { areas[i] = try table.addArea(for: new.apps[i], queue: SlotTable.queueCapacity(new.server)) }
        } catch {
            logger.error("HUP: \(error); still serving with the old configuration")
            return
        }
        let oldWorkers = workers.values.filter { $0.termSentAt == nil }.map(\.pid)
        let previous = config
        config = new
        do {
            let change = try listeners.update(to: new.server.bind, backlog: new.server.backlog, unixMode: new.server.unixSocketMode)
            if !change.opened.isEmpty { logger.info("HUP: listening on \(change.opened.map(\.description).joined(separator: ", "))") }
            if !change.closed.isEmpty { logger.info("HUP: no longer listening on \(change.closed.map(\.description).joined(separator: ", "))") }
            try writeConfigFile()
        } catch {
            logger.error("HUP: cannot apply the new configuration (\(error)); still serving with the old one")
            config = previous
            _ = try? listeners.update(to: previous.server.bind, backlog: previous.server.backlog, unixMode: previous.server.unixSocketMode)
            try? writeConfigFile()
            return
        }
        logger = GatewayLogging.logger(role: "master", sink: errorSink, level: new.log.level)
        target = new.server.workers
        generation += 1
        logger.info("HUP: configuration reloaded; starting \(target) new workers, then draining \(oldWorkers.count) old ones")
        // The new generation's apps before its workers: they are started with its areas.
        table = table.view(areas: areas)
        if let d = apps.regenerate(config: new, table: table, plan: plan) {
            drains.append((d, Set(oldWorkers)))
            for a in d.config.apps {
                let why = new.apps.contains { $0.name == a.name } ? "laid out anew (processes or max_conns changed)" : "removed"
                logger.info("HUP: app \(a.name) \(why): its old processes serve the old workers until they are gone, then stop")
            }
        }
        for i in plan.added { logger.info("HUP: app \(new.apps[i].name) starts") }
        apps.tick()
        spawnMissingWorkers()
        for pid in oldWorkers { terminate(pid) }
        watchServers()
        for i in plan.restarts { apps.rollingRestart(i, why: "its command or environment changed (HUP)") }
    }

    /// A new TLS session ticket key every tls_ticket_rotation: the workers take it at their
    /// next connection, and tickets sealed with the one before still open until the next.
    func rotateTicketKey() {
        guard !config.tls.isEmpty, Host.monotonicSeconds() - ticketKeyBorn >= config.server.tlsTicketRotation else { return }
        table.rotateTicketKey()
        ticketKeyBorn = Host.monotonicSeconds()
        logger.info("TLS: new session ticket key (tickets of the one before open until the next)")
    }

    /// Stops the apps of an earlier generation once the workers that used them are gone.
    func finishDrains() {
        let now = Host.monotonicSeconds()
        drains.removeAll { d in
            guard d.oldWorkers.isDisjoint(with: workers.keys), d.apps.drainStep(now: now) else { return false }
            logger.info("app \(d.apps.config.apps.map(\.name).joined(separator: ", ")) of the previous configuration stopped (its workers are gone)")
            return true
        }
    }

    /// The effective configuration workers read, as TOML in an unlinked file (fd 3 in a
    /// worker): every worker of a generation sees exactly what the master validated.
    func writeConfigFile() throws(SystemError) {
        let raw = try Host.anonymousFile(contents: Array(config.renderTOML().utf8))
        let fd = try raw.duplicate(atLeast: 64)
        try? raw.close()
        try? configFile?.close()
        configFile = fd
    }
}
