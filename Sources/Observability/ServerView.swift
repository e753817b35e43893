import GatewayConfig
import AppPool

/// What the status page and /metrics read: the configuration, and the slot table shared
/// by the master and every worker (slots, queues, processes, workers, the metrics area).
/// They read it under its locks, so any worker class can serve them from any thread.
public struct ServerView {
    public let config: Configuration
    public let table: SlotTable

    public init(config: Configuration, table: SlotTable) {
        self.config = config
        self.table = table
    }
}
