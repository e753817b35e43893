import GatewayConfig
import GatewaySystem
import HTTPWire
import Exchanges

/// The blocking workers' driver of a client connection's session (ClientSession): each
/// step is carried out with blocking calls on this thread. The sync worker runs it for
/// one connection at a time; the thread worker's threads run it whenever a connection
/// has input, and stop at the first read that would wait (the connection is re-armed).
/// The decisions are the session's, the same the epoll worker carries out.
public struct BlockingPipeline {
    let ctx: WorkerContext

    public init(context: WorkerContext) { ctx = context }

    var timeouts: TimeoutsConfig { ctx.config.timeouts }

    enum Pause {
        /// The connection is over: close it (it lingers if the session said so).
        case closed
        /// The session waits for bytes that have not arrived (thread worker: re-arm).
        case needsInput
    }

    /// Serves requests on `conn` until the connection should close (sync worker).
    public func serve(_ conn: ClientConnection) {
        _ = drive(conn, waitForInput: true)
    }

    /// Carries out the session's steps. With `waitForInput` a read waits (up to the
    /// session's deadline); without, the first read that would wait returns `.needsInput`.
    func drive(_ conn: ClientConnection, waitForInput: Bool) -> Pause {
        while true {
            let (step, _) = ctx.nextStep(conn) { head, now in
                WorkerRequest(head: head, id: ctx.nextRequestID(), started: now, keepAlive: ctx.offersKeepAlive(to: head))
            }
            switch step {
            case .read:
                guard read(conn, wait: waitForInput) else { return .needsInput }
            case .exchange(let r):
                conn.session.exchangeEnded(exchange(r, conn), ctx)
            case .send(let bytes):
                do { try conn.write(bytes, timeout: timeouts.send) } catch { clientGone(conn) }
            case .flush:
                do {
                    try conn.flush(timeout: timeouts.send)
                    conn.session.flushed()
                } catch {
                    clientGone(conn)
                }
            case .close(let linger):
                conn.lingerOnClose = linger
                return .closed
            default:
                break  // carried out by nextStep
            }
        }
    }

    /// One read for the session; false when it would wait and `wait` is off.
    func read(_ conn: ClientConnection, wait: Bool) -> Bool {
        do {
            if wait {
                conn.session.capIdle(ctx.idleDeadline)  // a drain that began during the wait
                if try !conn.fill(deadline: conn.session.deadline) { conn.session.clientClosed() }
            } else {
                guard !conn.drained, let more = try conn.readAvailable() else { return false }
                if !more { conn.session.clientClosed() }
            }
        } catch ClientError.timeout {
            conn.session.timedOut(ctx, now: Host.monotonicSeconds())
        } catch {
            conn.session.clientClosed()
        }
        return true
    }

    // MARK: - Routing

    /// The client stopped taking output: what it did not get is dropped.
    func clientGone(_ conn: ClientConnection) {
        conn.session.clientGone(unsent: conn.out.pending)
        conn.out.discard()
    }

    /// Runs the request's FastCGI or CGI exchange on this thread; its body is whole.
    func exchange(_ record: RequestRecord, _ conn: ClientConnection) -> ExchangeEnd {
        guard let r = record as? WorkerRequest else { return .failed(500, []) }
        switch r.destination {
        case .app(let index, let match):
            return BlockingAppLink(ctx: ctx, conn: conn).run(r, index: index, match: match)
        case .cgi(let script):
            return BlockingCGILink(ctx: ctx, conn: conn).run(r, script: script)
        default:
            return .failed(500, [])
        }
    }
}
