import GatewaySystem
import HTTPWire
import Logging
import Exchanges

/// A request as every worker class holds it: the session's record, its body (read whole
/// before the exchange) and where the router sent it.
class WorkerRequest: RequestRecord {
    /// Memory up to ExchangeLimits.bodyInMemory, then an unlinked temporary file.
    var body = BufferedBody()
    /// An exchange's destination (an app or a CGI program), once routed.
    var destination: Destination? = nil
    /// It came over TLS (HTTPS=on, REQUEST_SCHEME=https for the app).
    var secure = false

    func closeBody() {
        body.close()
        body = BufferedBody()
    }

    /// The app's index in the slot table (an app route).
    var appIndex: Int {
        if case .app(let index, _) = destination { return index }
        return 0
    }

    /// The program (a CGI route).
    var cgi: CGIScript? {
        if case .cgi(let script) = destination { return script }
        return nil
    }
}

/// A client connection as the session steps every driver carries out alike see it.
protocol SessionConnection: AnyObject {
    var session: ClientSession { get set }
    var out: ClientOutput { get set }
    /// The peer, or the client a PROXY header named.
    var remote: (address: String, port: Int) { get set }
    /// The connection speaks TLS.
    var secure: Bool { get }
}

extension SessionConnection {
    /// Error-log metadata of the connection's lines: its request, or its client.
    var logMeta: Logger.Metadata {
        guard let r = session.record else { return ["client": "\(remote.address)"] }
        return ["request_id": "\(r.id)"]
    }
}

/// The session steps whose work is the same in every worker class.
extension WorkerContext {
    /// A new connection's session, in every class.
    /// An HTTP/2 stream's session: the HTTP/1.1 request made of its fields (no PROXY
    /// header: its connection had it).
    func newStreamSession() -> ClientSession {
        ClientSession(limits: limits, timeouts: intakeTimeouts, now: Host.monotonicSeconds(), proxyHeader: false, capIdle: { $0 })
    }

    func newSession(listener: Int) -> ClientSession {
        ClientSession(limits: limits, timeouts: intakeTimeouts, now: Host.monotonicSeconds(),
                      proxyHeader: speaksProxyProtocol(listener: listener), capIdle: idleDeadline)
    }

    /// The session's next step that is the driver's own (read, exchange, send, flush,
    /// finished, close), once those that are the same everywhere are carried out: the
    /// session's notes logged, a PROXY header's client taken, a request made
    /// (`newRequest`), routed, its body held. `now` is the step's time.
    func nextStep<C: SessionConnection>(_ c: C, newRequest: (HTTPRequestHead, _ now: Double) -> WorkerRequest) -> (ClientSession.Step, now: Double) {
        while true {
            let now = Host.monotonicSeconds()
            let step = c.session.next(self, now: now)
            if !c.session.notes.isEmpty { log(c.session.takeNotes(), c.logMeta) }
            switch step {
            case .proxied(let address, let port):
                c.remote = (address, port)
            case .begin(let head):
                let r = newRequest(head, now)
                r.secure = c.secure
                c.session.begin(r)
            case .route(let r):
                guard let w = r as? WorkerRequest else { return (.close(linger: false), now) }  // (begin made it one)
                routeStep(w, peer: c.remote, &c.session, &c.out)
            case .holdBody(let piece):
                holdBody(piece, &c.session)
            case .finished(let r):
                finished(r, remote: c.remote.address)
                return (step, now)
            default:
                return (step, now)
            }
        }
    }

    /// Routes the request (again after a local redirect): a page or a static file is
    /// queued on `out` for the session's flush step, a refusal answered, an exchange's
    /// destination kept on the request.
    func routeStep(_ r: WorkerRequest, peer: (address: String, port: Int), _ session: inout ClientSession, _ out: inout ClientOutput) {
        let d = r.offload.map { offloadDestination($0, for: r) } ?? route(r, peer: peer)
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
