import GatewayConfig
import GatewaySystem
import AppPool
import Exchanges

/// The slow-request entry and request_timeout, for every worker class: when the app has
/// held a request for slow_request, the error log gets the request and what the kernel
/// shows of the process that holds it (state, wchan, kernel stack, sockets: no ptrace
/// needed); past request_timeout, that process is then ended and replaced (hosted) or the
/// request aborted (connect), and the engine answers 504.
extension AppLink {
    func inspect(elapsed: Double, end: Bool) {
        guard let l = lease else { return }
        let app = ctx.config.apps[appIndex]
        let hosted: Bool
        if case .hosted = app.kind { hosted = true } else { hosted = false }
        // The process: the slot's own (hosted). A connect app's are not gatewayd's: the
        // peer credentials of a unix connection name whoever called listen() (php-fpm's
        // master), not the child that holds the request, so they are not shown.
        var pid: Int32? = nil
        if hosted {
            let p = ctx.dispatcher.table.withLock(l.app) { a in a.processPID(l.slot, generation: l.generation) }
            if p > 0 { pid = Int32(p) }
        }
        let view = pid.flatMap(ProcessView.read)
        let what = end ? "request_timeout (\(app.requestTimeout) s) passed" : "slow request"
        let request = "\(record.head.method) \(record.target) app \(app.name) slot \(l.slot) held \(Self.seconds(elapsed)) s"
        let process = view?.summary ?? (pid.map { "pid \($0) (gone)" } ?? "a connect app (\(l.address)): its processes are not gatewayd's to inspect")
        ctx.logger.warning("\(what): \(request); \(process)", metadata: meta)
        if hosted, let pid, let name = app.dumpSignal, let sig = Signals.number(named: name) {
            Processes.signal(pid, sig)  // the app prints its own stack to stderr (the master logs it)
        }
        guard end else { return }
        if hosted {
            let marked = ctx.dispatcher.table.withLock(l.app) { a in a.markForEnding(l.slot, generation: l.generation) }
            if marked != 0 { ctx.logger.error("app \(app.name): ending process \(marked) (slot \(l.slot)), which held a request past request_timeout; the master starts another", metadata: meta) }
        } else if let b = backend {
            // Best effort: the socket may be full; the connection is closed at the release anyway.
            _ = try? b.write(FastCGIRequestWriter.abort(requestID: l.requestID), from: 0)
            ctx.logger.error("app \(app.name): aborted the request (FCGI_ABORT_REQUEST) and closing its connection", metadata: meta)
        }
    }

    static func seconds(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        return "\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst())"
    }
}
