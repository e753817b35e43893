import AppPool
import Exchanges

/// A connect app with several servers: what each attempt says of its server (passive
/// health, kept in the slot table), and the servers a retry should avoid.
extension AppLink {
    func serverHealth(_ l: AppDispatcher.Lease, served: Bool) {
        let fault = served ? ServerFault.none : x.lastFailure
        // Not served and not the server's doing (the client left, a protocol error): no news of its health.
        if !served && fault == .none { return }
        let (server, downFor) = ctx.dispatcher.serverOutcome(l, fault)
        if fault != .none && server < 64 { avoidServer |= 1 << Int64(server) }
        if let period = downFor {
            let app = ctx.config.apps[appIndex]
            ctx.logger.warning("app \(app.name): server \(app.servers[server].address) \(fault); marked down for \(Self.seconds(period)) s (max_fails \(app.maxFails), fail_timeout \(app.failTimeout) s)", metadata: meta)
        }
    }
}
