import GatewaySystem
import Logging

/// `worker_class = "sync"`: one connection at a time, blocking I/O (gunicorn's sync
/// worker). The loop only accepts; the shared pipeline does the rest.
public final class SyncWorker {
    let ctx: WorkerContext
    let process: WorkerProcess

    public init(context: WorkerContext, process: WorkerProcess) {
        ctx = context
        self.process = process
    }

    /// Runs until told to stop, the master dies, or max_requests is reached. Returns the exit code.
    public func run() -> Int32 {
        let pipeline = BlockingPipeline(context: ctx)
        let limit = process.requestLimit(ctx.config.server)
        for l in process.listeners { try? l.setNonBlocking(true) }
        let watched = process.listeners.map { ($0, Poll.readable) } + [(process.signalPipe, Poll.readable)]
        ctx.logger.info("sync worker ready", metadata: ["listeners": "\(process.listeners.count)"])
        while true {
            process.beat()
            if ctx.draining { return 0 }
            if limit > 0 && ctx.requestsServed >= limit {
                ctx.logger.info("max_requests (\(limit)) reached; exiting so the master starts a fresh worker")
                return 0
            }
            guard let ready = try? Poll.wait(watched, timeoutMilliseconds: 1000) else { continue }
            if ready.last != 0 { process.handleSignals(ctx) }
            for (i, l) in process.listeners.enumerated() where ready[i] != 0 && !ctx.draining {
                guard let fd = (try? Socket.accept(l)) ?? nil else { continue }  // another worker won the race
                Socket.setNoDelay(fd)
                let conn = ClientConnection(fd: fd, wake: process.signalPipe, heartbeat: ctx.onWait)
                conn.expectsProxyHeader = ctx.speaksProxyProtocol(listener: i)
                ctx.connectionsChanged(by: 1)
                pipeline.serve(conn)
                conn.close()
                ctx.connectionsChanged(by: -1)
            }
        }
    }
}
