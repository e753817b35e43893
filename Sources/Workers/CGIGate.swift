import GatewaySystem

/// The places for CGI programs in one worker (`cgi.max_processes`): a counting
/// semaphore. The sync and thread workers wait on it (a request at a time per thread);
/// the epoll worker only tries, and keeps its own queue of requests waiting.
/// @unchecked Sendable: its one mutable field, `busy`, is read and written only under `lock`.
final class CGIGate: @unchecked Sendable {
    let places: Int
    private var busy = 0
    private let lock = Condition()

    init(places: Int) { self.places = places }

    var running: Int { lock.withLock { busy } }

    func tryAcquire() -> Bool {
        lock.withLock {
            guard busy < places else { return false }
            busy += 1
            return true
        }
    }

    /// Waits for a place until `deadline` (monotonic seconds); `onWait` runs about once a
    /// second (the heartbeat). False when none came in time.
    func acquire(deadline: Double, onWait: () -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while busy >= places {
            let left = deadline - Host.monotonicSeconds()
            guard left > 0 else { return false }
            lock.unlock()
            onWait()
            lock.lock()
            if busy < places { break }
            lock.wait(seconds: min(left, 1))
        }
        busy += 1
        return true
    }

    func release() {
        lock.withLock {
            busy -= 1
            lock.signal()
        }
    }
}
