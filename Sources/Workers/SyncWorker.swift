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
        for l in process.listeners { try? l.setNonBlocking(true) }
        // Connections taken from the backlog when the drain began: served before exiting.
        var backlog: [(fd: FileDescriptor, listener: Int)] = []
        ctx.onDrain = { [process] in backlog += process.takeBacklogAndCloseListeners() }
        let watched = process.listeners.map { ($0, Poll.readable) } + [(process.signalPipe, Poll.readable)]
        ctx.logger.info("sync worker ready", metadata: ["listeners": "\(process.listeners.count)"])
        while true {
            process.beat()
            if ctx.draining {
                while !backlog.isEmpty { serve(backlog.removeFirst(), pipeline) }
                return 0
            }
            guard let ready = try? Poll.wait(watched, timeoutMilliseconds: 1000) else { continue }
            if ready.last != 0 { process.handleSignals(ctx) }
            for (i, l) in process.listeners.enumerated() where ready[i] != 0 && !ctx.draining {
                guard let fd = (try? Socket.accept(l, nonBlocking: true)) ?? nil else { continue }  // another worker won the race
                serve((fd, i), pipeline)
            }
        }
    }

    func serve(_ accepted: (fd: FileDescriptor, listener: Int), _ pipeline: BlockingPipeline) {
        Socket.setNoDelay(accepted.fd)
        let conn = ClientConnection(fd: accepted.fd, session: ctx.newSession(listener: accepted.listener),
                                    tls: ctx.newTLS(listener: accepted.listener), wake: process.signalPipe,
                                    heartbeat: ctx.onWait)
        ctx.connectionsChanged(by: 1)
        pipeline.serve(conn)
        conn.close()
        ctx.connectionsChanged(by: -1)
    }
}
