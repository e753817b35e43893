import GatewayConfig
import GatewaySystem
import AppPool
import Exchanges

/// The blocking workers' side of an app link (AppLink): the link's waits are carried
/// out on this thread. A slot is waited for in the app's queue, the app connection is
/// polled a second at a time (the worker's heartbeat stays fresh), and the client's
/// bytes are written whole before the link reads on.
final class BlockingAppLink: BlockingHost, AppLinkHost {
    /// Runs the request's FastCGI exchange to its end; its body is whole.
    func run(_ r: WorkerRequest, index: Int, match: RouteMatch) -> ExchangeEnd {
        let link = AppLink(ctx: ctx, record: r, appIndex: index, match: match, body: r.body, remote: conn.remote,
                           local: conn.local, host: self)
        while true {
            switch link.pump(buffer: &conn.scratch) {
            case .slot:
                link.queueStart = Host.monotonicSeconds()
                switch ctx.dispatcher.acquire(app: index, deadline: link.queueStart + link.x.app.queueTimeout, avoid: link.avoidServer, onWait: ctx.onWait) {
                case .success(let lease): link.granted(lease, now: Host.monotonicSeconds())
                case .failure(let why): link.x.noSlot(why == .queueFull ? .queueFull : .queueTimedOut)
                }
            case .connectBusy:
                Host.sleep(seconds: AppLink.connectRetrySeconds)
                link.timedOut(now: Host.monotonicSeconds())
            case .app:
                wait(link)
            case .client:
                return .clientGone  // (not reached: every write to the client is whole)
            case .ended(let end):
                return end
            }
        }
    }

    /// One poll of the app connection, up to a second or the link's deadline.
    func wait(_ link: AppLink) {
        let now = Host.monotonicSeconds()
        guard let b = link.backend, now < link.deadline else { return link.timedOut(now: now) }
        ctx.onWait()
        let ms = Int32(min(link.deadline - now, 1) * 1000) + 1
        let got = (try? Poll.wait([(b, link.wantsWritable ? Poll.readable | Poll.writable : Poll.readable)], timeoutMilliseconds: ms))?[0] ?? Poll.failed
        guard got != 0 else { return }
        link.ready(readable: got & Poll.readable != 0, writable: got & Poll.writable != 0, failed: got & Poll.failed != 0)
    }

    func watch(_ fd: FileDescriptor, kept: Bool) throws(SystemError) {}
    /// (The dispatcher polls a kept connection before it lends it to a blocking worker.)
    func stirredWhileParked(_ fd: FileDescriptor) -> Bool { false }
    func unwatch(_ fd: FileDescriptor) {}

    func releaseSlot(_ lease: AppDispatcher.Lease, connection: FileDescriptor?, reusable: Bool, served: Bool, overloaded: Bool) -> Bool {
        ctx.dispatcher.release(lease, connection: connection, reusable: reusable, served: served, overloaded: overloaded)
    }
}

/// A blocking worker's side of an exchange: the thread's connection, written to at once
/// (waiting for room up to the send timeout), so nothing is ever left queued.
class BlockingHost: ClientSink {
    let ctx: WorkerContext
    let conn: ClientConnection

    init(ctx: WorkerContext, conn: ClientConnection) {
        self.ctx = ctx
        self.conn = conn
        conn.ensureScratch()  // the exchange's reads use the connection's buffer
    }

    func sendToClient(_ bytes: [UInt8]) -> Bool {
        do { try conn.write(bytes, timeout: ctx.config.timeouts.send) } catch { return false }
        return true
    }

    var clientBacklog: Int { 0 }
}
