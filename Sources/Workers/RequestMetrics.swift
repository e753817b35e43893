import GatewayConfig
import AppPool

/// What each request adds to /metrics: its route label, status and time, and an app's
/// queue waits (the shared region's counters, MetricsArea).
extension WorkerContext {
    /// The route label of a target, for metrics: the route's path or extension, or
    /// "status", "metrics", "unrouted" (no route: 404) and "invalid" (no usable path).
    func routeLabel(_ target: String) -> String {
        guard let path = Self.requestPath(target) else { return "invalid" }
        if path == config.server.statusPath { return "status" }
        if path == config.server.metricsPath { return "metrics" }
        guard let match = router.match(path) else { return "unrouted" }
        return Self.label(of: match.route)
    }

    static func label(of route: RouteConfig) -> String {
        switch route.match {
        case .path(let p): return p
        case .extension(let e): return e
        }
    }

    /// Adds a finished request to the shared counters (when /metrics is on).
    func recordMetrics(label: @autoclosure () -> String, status: Int, seconds: Double) {
        guard config.server.metricsPath != nil, status > 0 else { return }
        let label = label()
        let area = dispatcher.table.metrics
        let entry: Int? = counters.withLock {
            if let e = metricEntries[label] { return e }
            let e = area.routeEntry(for: label)
            if let e { metricEntries[label] = e }
            return e
        }
        guard let entry else { return }
        area.recordRequest(entry: entry, status: status, seconds: seconds)
    }

    func recordQueueWait(app: Int, seconds: Double) {
        guard config.server.metricsPath != nil else { return }
        dispatcher.table.metrics.recordQueueWait(app: dispatcher.table.areaIndices[app], seconds: seconds)
    }
}
