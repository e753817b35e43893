import GatewayConfig
import GatewaySystem
import HTTPWire
import AppPool
import Exchanges

/// The status page (`server.status_path`), like php-fpm's pm.status_path: per app its
/// processes, slots, queue and counters; per worker its connections and requests.
/// Plain text by default, `?json` or `?html` (or `format=json|html|text`).
public struct StatusPage {
    struct AppRow {
        var name: String
        var kind: String
        var mode: String
        var slots: Int
        var processes: Int
        var idle: Int
        var busy: Int
        var queue: Int
        var maxQueue: Int
        var accepted: Int64
        var rejected: Int64
        var restarts: Int64
        var slowRequests: Int64
        var processList: [(slot: Int, pid: Int64, state: String, requests: Int64, seconds: Double)]
        /// A connect app with several servers: each one's health and load.
        var servers: [ServerRow] = []
    }

    struct ServerRow {
        var address: String
        var weight: Int
        var up: Bool
        var inFlight: Int
        var requests: Int64
        var failures: Int64
        var lastError: String
        /// Connections it is given at once, and what it said it takes (0: nothing).
        var capacity: Int
        var learnedCapacity: Int
    }

    struct WorkerRow {
        var id: Int64
        var pid: Int64
        var connections: Int64
        var requests: Int64
        var seconds: Double
    }

    enum Format { case text, json, html }

    static func format(query: Substring) -> Format {
        for part in query.split(separator: "&") {
            switch part {
            case "json", "format=json": return .json
            case "html", "format=html": return .html
            default: continue
            }
        }
        return .text
    }

    /// Reads the shared table (each app under its lock, so its numbers agree).
    static func collect(_ ctx: ServerView) -> (apps: [AppRow], workers: [WorkerRow]) {
        let now = Host.monotonicSeconds()
        let table = ctx.table
        var apps: [AppRow] = []
        for (i, app) in ctx.config.apps.enumerated() {
            var kind = "connect", mode = "-"
            switch app.kind {
            case .hosted(_, let pm): kind = "hosted"; mode = pm.mode.rawValue
            case .external(let s): kind = "connect " + s.map(\.address.description).joined(separator: ", ")
            }
            let row: AppRow = table.withLock(i) { a in
                let c = a.census()
                let r = a.record.pointee
                var list: [(Int, Int64, String, Int64, Double)] = []
                for s in a.slotIndices {
                    let slot = a.slots[s]
                    let state: String
                    switch SlotState(rawValue: slot.state) ?? .empty {
                    case .empty: state = "empty"
                    case .idle: state = slot.keeper != 0 ? "idle (kept)" : "idle"
                    case .busy: state = "busy"
                    case .retiring: state = "retiring"
                    }
                    let since = slot.state == SlotState.busy.rawValue ? slot.busySince : slot.startedAt
                    list.append((s, slot.processPID, state, slot.requests, since > 0 ? now - since : 0))
                }
                let servers = a.serverRows(now: now).compactMap { s -> ServerRow? in
                    guard s.server < app.servers.count else { return nil }  // a hosted app has none
                    return ServerRow(address: app.servers[s.server].address.description, weight: app.servers[s.server].weight, up: s.up,
                                     inFlight: s.inFlight, requests: s.picks, failures: s.failures, lastError: s.lastError.description,
                                     capacity: s.capacity, learnedCapacity: s.learnedCapacity)
                }
                return AppRow(name: app.name, kind: kind, mode: mode, slots: Int(r.usableSlots),
                              processes: r.hosted == 1 ? c.running : 0, idle: c.idle, busy: c.busy,
                              queue: Int(r.queueLength), maxQueue: Int(r.queueMax), accepted: r.accepted,
                              rejected: r.rejected, restarts: r.restarts, slowRequests: r.slowRequests, processList: list,
                              servers: servers)
            }
            apps.append(row)
        }
        var workers: [WorkerRow] = []
        for w in 0..<SlotTable.workerCapacity where table.workers[w].pid != 0 {
            let rec = table.workers[w]
            workers.append(WorkerRow(id: rec.id, pid: rec.pid, connections: rec.connections, requests: rec.requests, seconds: now - rec.startedAt))
        }
        return (apps, workers.sorted { $0.id < $1.id })
    }

    static func render(_ ctx: ServerView, _ format: Format) -> (contentType: String, body: [UInt8]) {
        let (apps, workers) = collect(ctx)
        switch format {
        case .text: return ("text/plain; charset=utf-8", Array(text(ctx, apps, workers).utf8))
        case .json: return ("application/json", Array(json(ctx, apps, workers).utf8))
        case .html: return ("text/html; charset=utf-8", Array(html(ctx, apps, workers).utf8))
        }
    }

    static func text(_ ctx: ServerView, _ apps: [AppRow], _ workers: [WorkerRow]) -> String {
        var out = "gatewayd \(ServerIdentity.software) worker_class \(ctx.config.server.workerClass.rawValue)\n"
        for a in apps {
            out += "\napp:                  \(a.name)\n"
            out += "kind:                 \(a.kind)\n"
            if a.mode != "-" { out += "process manager:      \(a.mode)\n" }
            out += "slots:                \(a.slots)\n"
            if a.kind == "hosted" { out += "processes:            \(a.processes)\n" }
            out += "idle slots:           \(a.idle)\nbusy slots:           \(a.busy)\n"
            out += "queue length:         \(a.queue)\nmax queue length:     \(a.maxQueue)\n"
            out += "accepted requests:    \(a.accepted)\nrejected (503):       \(a.rejected)\n"
            out += "restarts:             \(a.restarts)\nslow requests:        \(a.slowRequests)\n"
            for s in a.servers {
                let said = s.learnedCapacity > 0 ? " (it says \(s.learnedCapacity))" : ""
                out += "server \(s.address): \(s.up ? "up" : "down"), weight \(s.weight), \(s.capacity) connections\(said), \(s.inFlight) in flight, \(s.requests) requests, \(s.failures) failures, last error: \(s.lastError)\n"
            }
        }
        out += "\nworkers:              \(workers.count)\n"
        for w in workers {
            out += "worker \(w.id) (pid \(w.pid)): \(w.connections) connections, \(w.requests) requests, up \(Int(w.seconds)) s\n"
        }
        return out
    }

    static func json(_ ctx: ServerView, _ apps: [AppRow], _ workers: [WorkerRow]) -> String {
        func s(_ v: String) -> String { AccessLog.json(v) }
        let appItems = apps.map { a in
            let procs = a.processList.map { p in
                "{\"slot\":\(p.slot),\"pid\":\(p.pid),\"state\":\(s(p.state)),\"requests\":\(p.requests),\"seconds\":\(Int(p.seconds))}"
            }.joined(separator: ",")
            return "{\"name\":\(s(a.name)),\"kind\":\(s(a.kind)),\"process_manager\":\(s(a.mode)),\"slots\":\(a.slots),"
                + "\"processes\":\(a.processes),\"idle\":\(a.idle),\"busy\":\(a.busy),\"queue_length\":\(a.queue),"
                + "\"max_queue_length\":\(a.maxQueue),\"accepted\":\(a.accepted),\"rejected\":\(a.rejected),"
                + "\"restarts\":\(a.restarts),\"slow_requests\":\(a.slowRequests),\"slot_list\":[\(procs)],\"servers\":[\(servers(a))]}"
        }.joined(separator: ",")
        let workerItems = workers.map {
            "{\"id\":\($0.id),\"pid\":\($0.pid),\"connections\":\($0.connections),\"requests\":\($0.requests),\"seconds\":\(Int($0.seconds))}"
        }.joined(separator: ",")
        return "{\"server\":\(s(ServerIdentity.software)),\"worker_class\":\(s(ctx.config.server.workerClass.rawValue)),"
            + "\"apps\":[\(appItems)],\"workers\":[\(workerItems)]}\n"
    }

    static func servers(_ a: AppRow) -> String {
        a.servers.map { s in
            "{\"address\":\(AccessLog.json(s.address)),\"weight\":\(s.weight),\"up\":\(s.up),\"in_flight\":\(s.inFlight),"
                + "\"connections\":\(s.capacity),\"says_it_takes\":\(s.learnedCapacity),"
                + "\"requests\":\(s.requests),\"failures\":\(s.failures),\"last_error\":\(AccessLog.json(s.lastError))}"
        }.joined(separator: ",")
    }

    static func html(_ ctx: ServerView, _ apps: [AppRow], _ workers: [WorkerRow]) -> String {
        func e(_ v: String) -> String {
            var o = ""
            for c in v {
                switch c {
                case "<": o += "&lt;"
                case ">": o += "&gt;"
                case "&": o += "&amp;"
                case "\"": o += "&quot;"
                default: o.append(c)
                }
            }
            return o
        }
        var out = """
        <!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
        <title>gatewayd status</title><style>
        body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0 0 1.5em}
        th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
        .busy{color:#b45309}.idle{color:#15803d}h2{margin-top:1.5em}
        </style></head><body>
        <h1>gatewayd status</h1><p>\(e(ServerIdentity.software)), worker_class \(e(ctx.config.server.workerClass.rawValue)); refreshes every 5 s.</p>
        <h2>Apps</h2><table><tr><th>app</th><th>kind</th><th>pm</th><th>slots</th><th>processes</th><th>idle</th><th>busy</th>
        <th>queue</th><th>max queue</th><th>accepted</th><th>rejected</th><th>restarts</th><th>slow</th></tr>
        """
        for a in apps {
            out += "<tr><td>\(e(a.name))</td><td>\(e(a.kind))</td><td>\(e(a.mode))</td><td>\(a.slots)</td><td>\(a.processes)</td>"
            out += "<td class=idle>\(a.idle)</td><td class=busy>\(a.busy)</td><td>\(a.queue)</td><td>\(a.maxQueue)</td>"
            out += "<td>\(a.accepted)</td><td>\(a.rejected)</td><td>\(a.restarts)</td><td>\(a.slowRequests)</td></tr>\n"
        }
        out += "</table>\n"
        for a in apps where a.kind == "hosted" {
            out += "<h2>\(e(a.name)): slots</h2><table><tr><th>slot</th><th>pid</th><th>state</th><th>requests</th><th>seconds</th></tr>\n"
            for p in a.processList {
                out += "<tr><td>\(p.slot)</td><td>\(p.pid == 0 ? "-" : String(p.pid))</td><td class=\(p.state.hasPrefix("busy") ? "busy" : "idle")>\(e(p.state))</td>"
                out += "<td>\(p.requests)</td><td>\(Int(p.seconds))</td></tr>\n"
            }
            out += "</table>\n"
        }
        out += "<h2>Workers</h2><table><tr><th>worker</th><th>pid</th><th>connections</th><th>requests</th><th>up (s)</th></tr>\n"
        for w in workers {
            out += "<tr><td>\(w.id)</td><td>\(w.pid)</td><td>\(w.connections)</td><td>\(w.requests)</td><td>\(Int(w.seconds))</td></tr>\n"
        }
        return out + "</table></body></html>\n"
    }

    /// The whole response.
    /// `query`: the request target's query part ("json", "format=html", ...).
    public static func response(_ ctx: ServerView, query: Substring, method: String, keepAlive: Bool, date: String) -> [UInt8] {
        let (type, body) = render(ctx, format(query: query))
        return ResponseHead.page(type: type, body: body, method: method, keepAlive: keepAlive, date: date)
    }
}
