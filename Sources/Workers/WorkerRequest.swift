import GatewaySystem
import Logging
import Exchanges

/// A request as every worker class holds it: the session's record, its body (read whole
/// before the exchange) and where the router sent it.
class WorkerRequest: RequestRecord {
    /// Memory up to ExchangeLimits.bodyInMemory, then an unlinked temporary file.
    var body = BufferedBody()
    /// An exchange's destination (an app or a CGI program), once routed.
    var destination: Destination? = nil

    func closeBody() {
        body.close()
        body = BufferedBody()
    }
}

/// The session steps whose work is the same in every worker class.
extension WorkerContext {
    /// Routes the request (again after a local redirect): a page or a static file is
    /// queued on `out` for the session's flush step, a refusal answered, an exchange's
    /// destination kept on the request.
    func routeStep(_ r: WorkerRequest, peer: (address: String, port: Int), _ session: inout ClientSession, _ out: inout ClientOutput) {
        let d = route(r, peer: peer)
        if let (status, bytes) = answer(d, for: r, into: &out) { return session.answered(status: status, bytes: bytes) }
        if case .refuse(let status, let headers) = d { return session.refuse(status, headers, self) }
        r.destination = d
        session.forward(now: Host.monotonicSeconds())
    }

    /// Keeps a piece of the body; a full disk is a 500.
    func holdBody(_ piece: ArraySlice<UInt8>, _ session: inout ClientSession) {
        guard let r = session.record as? WorkerRequest else { return }
        do { try r.body.append(piece) } catch {
            logger.error("cannot buffer the request body: \(error)", metadata: ["request_id": "\(r.id)"])
            session.bodyHoldFailed(self)
        }
    }

    /// A request is over: its body goes, its access-log line and metrics are written.
    func finished(_ r: RequestRecord, remote: String) {
        (r as? WorkerRequest)?.closeBody()
        logAccess(r, remote: remote)
        requestFinished()
    }
}
