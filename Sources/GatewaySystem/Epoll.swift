import Glibc
import CGatewayShims

/// An epoll instance. User data is a 64-bit value the caller chooses (NIO packs fd and a
/// generation into it, so a stale event for a reused fd can be told apart).
public struct Epoll: Sendable {
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: gw_EPOLLIN)
        public static let writable = Events(rawValue: gw_EPOLLOUT)
        public static let error = Events(rawValue: gw_EPOLLERR)
        public static let hangup = Events(rawValue: gw_EPOLLHUP)
        public static let peerClosed = Events(rawValue: gw_EPOLLRDHUP)
        public static let edgeTriggered = Events(rawValue: gw_EPOLLET)
        /// Wake one waiter per event on a shared listener (no thundering herd).
        public static let exclusive = Events(rawValue: gw_EPOLLEXCLUSIVE)
        /// Report once, then stay disarmed until `modify` re-arms it (one thread per event).
        public static let oneShot = Events(rawValue: gw_EPOLLONESHOT)
    }

    public let fd: FileDescriptor

    public init() throws(SystemError) {
        fd = FileDescriptor(try syscall("epoll_create1") { gw_epoll_create_cloexec() })
    }

    public func add(_ target: FileDescriptor, _ events: Events, data: UInt64) throws(SystemError) {
        _ = try syscall("epoll_ctl(ADD)") { gw_epoll_ctl(fd.rawValue, gw_EPOLL_CTL_ADD, target.rawValue, events.rawValue, data) }
    }

    public func modify(_ target: FileDescriptor, _ events: Events, data: UInt64) throws(SystemError) {
        _ = try syscall("epoll_ctl(MOD)") { gw_epoll_ctl(fd.rawValue, gw_EPOLL_CTL_MOD, target.rawValue, events.rawValue, data) }
    }

    public func remove(_ target: FileDescriptor) throws(SystemError) {
        _ = try syscall("epoll_ctl(DEL)") { gw_epoll_ctl(fd.rawValue, gw_EPOLL_CTL_DEL, target.rawValue, 0, 0) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and calls `body` for each ready fd.
    /// An interrupted wait returns 0 events rather than throwing (signals wake the loop).
    @discardableResult
    public func wait(buffer: EventBuffer, timeoutMilliseconds: Int32,
                     _ body: (Events, UInt64) -> Void) throws(SystemError) -> Int {
        let events = buffer.events
        let n = gw_epoll_wait(fd.rawValue, events.baseAddress, Int32(events.count), timeoutMilliseconds)
        if n == -1 {
            if errno == EINTR { return 0 }
            throw SystemError(errno: errno, "epoll_wait")
        }
        for i in 0..<Int(n) {
            let e = events.baseAddress! + i
            body(Events(rawValue: gw_epoll_event_events(e)), gw_epoll_event_data(e))
        }
        return Int(n)
    }
}

extension Epoll {
    /// Room for the events one wait returns; allocated once per loop, not per wait.
    public final class EventBuffer {
        let events: UnsafeMutableBufferPointer<epoll_event>
        public init(capacity: Int) { events = .allocate(capacity: capacity) }
        deinit { events.deallocate() }
    }
}
