import GatewayConfig
import HTTPWire
import AppPool
import Exchanges

/// `/metrics` (server.metrics_path) in the Prometheus text format 0.0.4: requests by
/// route and status, request latency by route, and per app its slots, processes, queue,
/// queue waits, restarts and rejections. The counters live in the shared region, so
/// every worker answers with the totals of all workers.
public enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func response(_ ctx: ServerView, method: String, keepAlive: Bool, date: String) -> [UInt8] {
        ResponseHead.page(type: contentType, body: Array(render(ctx).utf8), method: method, keepAlive: keepAlive, date: date)
    }

    static func render(_ ctx: ServerView) -> String {
        let area = ctx.table.metrics
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func histogram(_ name: String, _ labels: String, _ h: MetricsArea.Histogram) {
            var cumulative: UInt64 = 0
            for (i, le) in MetricsArea.buckets.enumerated() {
                cumulative += h.counts[i]
                out += "\(name)_bucket{\(labels),le=\"\(number(le))\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(labels),le=\"+Inf\"} \(h.count)\n"
            out += "\(name)_sum{\(labels)} \(number(h.sum))\n\(name)_count{\(labels)} \(h.count)\n"
        }

        let routes = area.routes()
        family("gatewayd_requests_total", "counter", "Requests answered, by route and status.")
        for r in routes {
            for (i, n) in r.statuses.enumerated() where n > 0 {
                out += "gatewayd_requests_total{route=\"\(escape(r.label))\",status=\"\(MetricsArea.statusLabel(i))\"} \(n)\n"
            }
        }
        family("gatewayd_request_duration_seconds", "histogram", "Time from the request head to the end of the response, by route.")
        for r in routes { histogram("gatewayd_request_duration_seconds", "route=\"\(escape(r.label))\"", r.latency) }

        let (apps, workers) = StatusPage.collect(ctx)
        family("gatewayd_app_slots", "gauge", "Connection slots of each app, by state.")
        for a in apps {
            out += "gatewayd_app_slots{app=\"\(escape(a.name))\",state=\"busy\"} \(a.busy)\n"
            out += "gatewayd_app_slots{app=\"\(escape(a.name))\",state=\"idle\"} \(a.idle)\n"
        }
        family("gatewayd_app_processes", "gauge", "Running processes of each hosted app.")
        for a in apps { out += "gatewayd_app_processes{app=\"\(escape(a.name))\"} \(a.processes)\n" }
        family("gatewayd_app_queue_length", "gauge", "Requests waiting for a slot.")
        for a in apps { out += "gatewayd_app_queue_length{app=\"\(escape(a.name))\"} \(a.queue)\n" }
        family("gatewayd_app_queue_wait_seconds", "histogram", "Time requests waited for a slot.")
        for (i, a) in apps.enumerated() {
            if let h = area.queueWait(app: ctx.table.areaIndices[i]) { histogram("gatewayd_app_queue_wait_seconds", "app=\"\(escape(a.name))\"", h) }
        }
        family("gatewayd_app_restarts_total", "counter", "Hosted app processes started again after they ended.")
        for a in apps { out += "gatewayd_app_restarts_total{app=\"\(escape(a.name))\"} \(a.restarts)\n" }
        family("gatewayd_app_rejected_total", "counter", "Requests answered 503 because no slot came free in time.")
        for a in apps { out += "gatewayd_app_rejected_total{app=\"\(escape(a.name))\"} \(a.rejected)\n" }
        if apps.contains(where: { !$0.servers.isEmpty }) {
            family("gatewayd_app_server_up", "gauge", "1 while a connect app's server is up (not marked down by failed requests or health probes).")
            for a in apps { for s in a.servers { out += "gatewayd_app_server_up{app=\"\(escape(a.name))\",server=\"\(escape(s.address))\"} \(s.up ? 1 : 0)\n" } }
            family("gatewayd_app_server_in_flight", "gauge", "Requests in flight on each server of a connect app.")
            for a in apps { for s in a.servers { out += "gatewayd_app_server_in_flight{app=\"\(escape(a.name))\",server=\"\(escape(s.address))\"} \(s.inFlight)\n" } }
            family("gatewayd_app_server_requests_total", "counter", "Requests given to each server of a connect app.")
            for a in apps { for s in a.servers { out += "gatewayd_app_server_requests_total{app=\"\(escape(a.name))\",server=\"\(escape(s.address))\"} \(s.requests)\n" } }
            family("gatewayd_app_server_connections", "gauge", "Connections a connect app's server is given at once (max_conns, or what it said in FCGI_MAX_CONNS).")
            for a in apps { for s in a.servers { out += "gatewayd_app_server_connections{app=\"\(escape(a.name))\",server=\"\(escape(s.address))\"} \(s.capacity)\n" } }
            family("gatewayd_app_server_failures_total", "counter", "Refused, reset or timed-out requests, and failed health probes, on each server of a connect app.")
            for a in apps { for s in a.servers { out += "gatewayd_app_server_failures_total{app=\"\(escape(a.name))\",server=\"\(escape(s.address))\"} \(s.failures)\n" } }
        }
        family("gatewayd_workers", "gauge", "Worker processes running.")
        out += "gatewayd_workers \(workers.count)\n"
        family("gatewayd_connections", "gauge", "Open client connections, all workers.")
        out += "gatewayd_connections \(workers.reduce(0) { $0 + $1.connections })\n"
        return out
    }

    /// Label values escape backslash, quote and newline.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}
