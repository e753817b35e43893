import GatewayConfig
import GatewaySystem
import Exchanges
import Testing
@testable import AppPool

/// The slot table's decisions, on a real shared region in this process.
@Suite struct SlotTableTests {
    static func config(slots: Int, hosted: Bool = false) throws -> Configuration {
        let app = hosted
            ? "[[app]]\nname = \"a\"\ncommand = [\"/bin/true\"]\nprocesses = \(slots)\n"
            : "[[app]]\nname = \"a\"\nconnect = \"127.0.0.1:9000\"\nmax_conns = \(slots)\n"
        return try ConfigLoader.load(text: "[server]\nworkers = 2\n" + app, file: "t.toml", baseDirectory: "/", cpuCount: 2)
    }

    static func servers(_ weights: [Int], maxConns: Int = 1) throws -> Configuration {
        let list = weights.enumerated().map { "{ address = \"127.0.0.\($0.offset + 2):9000\", max_conns = \(maxConns), weight = \($0.element) }" }
        let app = "[[app]]\nname = \"a\"\nservers = [\(list.joined(separator: ", "))]\nmax_fails = 2\nfail_timeout = 10\n"
        return try ConfigLoader.load(text: "[server]\nworkers = 2\n" + app, file: "t.toml", baseDirectory: "/", cpuCount: 2)
    }

    @Test("several servers: picks by weight when idle, by fewest in flight per weight when busy")
    func serversByWeight() throws {
        let table = try SlotTable.create(for: Self.servers([2, 1, 1], maxConns: 4))
        table.withLock(0) { a in
            var picks = [0, 0, 0]
            for _ in 0..<400 {  // one at a time: a weighted round robin
                let s = a.pickSlot(for: 10, now: 0)!
                a.take(s, for: 10, now: 0)
                picks[Int(a.slots[s].server)] += 1
                _ = a.release(s, by: 10, generation: 0, keep: false, countRequest: true, now: 0)
            }
            #expect(picks == [200, 100, 100])
            // Under load: server 0 (weight 2) takes two in flight for each of the others' one.
            var held: [Int] = []
            for _ in 0..<8 { let s = a.pickSlot(for: 10, now: 0)!; a.take(s, for: 10, now: 0); held.append(s) }
            let inFlight = (0..<3).map { k in held.filter { a.slots[$0].server == Int64(k) }.count }
            #expect(inFlight == [4, 2, 2])
        }
    }

    @Test("several servers: a retry waiting for another server does not hold up the waiters behind it")
    func retryDoesNotBlockTheQueue() throws {
        let table = try SlotTable.create(for: Self.servers([1, 1], maxConns: 1))
        table.withLock(0) { a in
            a.take(1, for: 10, now: 0)  // server 1 busy, server 0 free
            // A retry that failed on server 0 waits for server 1, and is not given server 0.
            let retry = a.enqueue(10, now: 0, avoid: 1 << 0)!
            a.dispatch(now: 0)
            #expect(a.collect(retry) == nil)
            // A new request behind it takes server 0, which the retry will not.
            let fresh = a.enqueue(11, now: 0)!
            a.dispatch(now: 0)
            #expect(a.collect(fresh) == 0)
            // Server 1 comes free: the retry gets it.
            _ = a.release(1, by: 10, generation: 0, keep: false, countRequest: true, now: 0, handOff: false)
            #expect(a.collect(retry) == 1)
        }
    }

    @Test("several servers: max_fails marks a server down (its slots passed over), a success heals it; all down, all are tried")
    func passiveHealth() throws {
        let table = try SlotTable.create(for: Self.servers([1, 1], maxConns: 1))
        table.withLock(0) { a in
            #expect(a.serverOutcome(0, .refused, maxFails: 2, failTimeout: 10, now: 0) == nil)
            #expect(a.serverOutcome(0, .refused, maxFails: 2, failTimeout: 10, now: 0) == 10)
            #expect(a.pickSlot(for: 10, now: 1) == 1)
            #expect(a.serverRows(now: 1).map(\.up) == [false, true])
            // Back after fail_timeout; one more failure and it is down again, twice as long.
            #expect(a.serverOutcome(0, .timeout, maxFails: 2, failTimeout: 10, now: 11) == 20)
            #expect(a.serverOutcome(1, .reset, maxFails: 2, failTimeout: 10, now: 11) == nil)
            #expect(a.serverOutcome(1, .reset, maxFails: 2, failTimeout: 10, now: 11) == 10)
            #expect(a.pickSlot(for: 10, now: 12) != nil)  // every server down: tried anyway
            #expect(a.serverOutcome(0, .none, maxFails: 2, failTimeout: 10, now: 40) == nil)
            #expect(a.serverOutcome(0, .refused, maxFails: 2, failTimeout: 10, now: 40) == nil)  // healed: max_fails again
            // A retry avoids the servers it tried while another is up, even one that is busy.
            #expect(a.pickSlot(for: 10, now: 40, avoid: 1 << 0) == 1)
            #expect(a.pickSlot(for: 10, now: 40, avoid: 1 << 1) == 0)
            a.take(1, for: 11, now: 40)
            #expect(a.pickSlot(for: 10, now: 40, avoid: 1 << 0) == nil)  // waits for server 1
            #expect(a.pickSlot(for: 10, now: 40, avoid: 0b11) == 0)  // every server tried: take what is free
        }
    }

    @Test func takesFreeSlotsThenQueuesInArrivalOrder() throws {
        let table = try SlotTable.create(for: Self.config(slots: 2))
        table.withLock(0) { a in
            #expect(a.pickSlot(for: 10, now: 0) == 0)
            a.take(0, for: 10, now: 0)
            #expect(a.pickSlot(for: 11, now: 0) == 1)
            a.take(1, for: 11, now: 0)
            #expect(a.pickSlot(for: 12, now: 0) == nil)
            let t1 = a.enqueue(12)!
            let t2 = a.enqueue(13)!
            #expect(a.record.pointee.queueLength == 2)
            _ = a.release(1, by: 11, generation: 0, keep: false, countRequest: true, now: 1)
            #expect(a.collect(t2) == nil)  // FIFO: the first waiter gets it
            #expect(a.collect(t1) == 1)
            #expect(a.cancel(t2) == nil)
            #expect(a.record.pointee.queueLength == 0)
            _ = a.release(0, by: 10, generation: 0, keep: false, countRequest: true, now: 2)
            #expect(a.census().idle == 1)  // slot 1 is still busy for pid 12
        }
    }

    @Test func keptSlotIsReservedForItsKeeperUntilReclaimed() throws {
        let table = try SlotTable.create(for: Self.config(slots: 1))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            #expect(a.release(0, by: 10, generation: 0, keep: true, countRequest: true, now: 1).kept)
            #expect(a.pickSlot(for: 11, now: 1) == nil)  // pinned by pid 10's connection
            #expect(a.pickSlot(for: 10, now: 1) == 0)
            let t = a.enqueue(11)!
            #expect(a.requestReclaim(excluding: 11) == 10)
            // The keeper gives it back:
            a.slots[0].keeper = 0
            a.slots[0].reclaim = 0
            a.dispatch(now: 2)
            #expect(a.collect(t) == 0)
        }
    }

    @Test func deadWorkerLosesItsSlotsAndQueueEntries() throws {
        let table = try SlotTable.create(for: Self.config(slots: 1))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            let t = a.enqueue(11)!
            _ = a.enqueue(12)
            a.releaseAll(of: 10, now: 1)
            #expect(a.collect(t) == 0)
            a.releaseAll(of: 11, now: 1)  // 11 dies holding the granted slot: it goes to 12
            #expect(a.slots[0].owner == 12)
        }
    }

    @Test func recyclingNeverRetiresTwoProcessesAtOnce() throws {
        let table = try SlotTable.create(for: Self.config(slots: 2, hosted: true))
        table.withLock(0) { a in
            for s in 0..<2 {
                a.slots[s].processPID = Int64(100 + s)
                a.slots[s].generation = 1
                a.slots[s].state = SlotState.idle.rawValue
                a.slots[s].requestLimit = 1
            }
            a.take(0, for: 10, now: 0)
            a.take(1, for: 11, now: 0)
            #expect(a.release(0, by: 10, generation: 1, keep: false, countRequest: true, now: 1).retire)
            #expect(!a.release(1, by: 11, generation: 1, keep: false, countRequest: true, now: 1).retire)
            #expect(a.slots[1].state == SlotState.idle.rawValue)
        }
    }

    @Test func workerSeesTheMastersTable() throws {
        let config = try Self.config(slots: 3)
        let table = try SlotTable.create(for: config)
        table.withLock(0) { a in a.take(2, for: 99, now: 0) }
        let view = try SlotTable.attach(table.memory.fd, config: config)
        #expect(view.apps[0].slots[2].owner == 99)
        #expect(view.apps[0].record.pointee.queueCapacity == Int64(SlotTable.queueCapacity(config.server)))
    }

    @Test func connectionIsParkedOnlyWhenNobodyElseWaits() throws {
        let table = try SlotTable.create(for: Self.config(slots: 1))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            let t = a.enqueue(11)!
            #expect(!a.release(0, by: 10, generation: 0, keep: true, countRequest: true, now: 1).kept, "pid 11 waits")
            #expect(a.collect(t) == 0)
            // The oldest waiter is the releasing worker itself (an epoll or thread worker):
            let mine = a.enqueue(11)!
            #expect(a.release(0, by: 11, generation: 0, keep: true, countRequest: true, now: 2).kept)
            #expect(a.collect(mine) == 0 && a.slots[0].keeper == 11, "it reuses its own kept connection")
        }
    }

    @Test func aReleasedSlotGoesToTheReleasersOwnWaiterNearTheFront() throws {
        // 2 slots: a waiter of the releasing worker among the first 2 live waiters gets
        // the slot (and the kept connection) at once; further back, FIFO holds.
        let table = try SlotTable.create(for: Self.config(slots: 2))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            a.take(1, for: 11, now: 0)
            let other = a.enqueue(20)!
            let mine = a.enqueue(10)!
            let r = a.release(0, by: 10, generation: 0, keep: true, countRequest: true, now: 1)
            #expect(r.kept && a.collect(mine) == 0 && a.slots[0].keeper == 10, "handed to pid 10's own second-in-line request")
            #expect(a.collect(other) == nil, "the head still waits")
            #expect(a.record.pointee.queueLength == 1)
            // Out of the window: 20 and 21 are ahead of pid 11's waiter, so FIFO.
            let other2 = a.enqueue(21)!
            let mine2 = a.enqueue(11)!
            #expect(!a.release(1, by: 11, generation: 0, keep: true, countRequest: true, now: 2).kept)
            #expect(a.collect(other) == 1 && a.collect(mine2) == nil)
            // The head moved past the granted entries: the next release goes to 21.
            _ = a.release(0, by: 10, generation: 0, keep: false, countRequest: true, now: 3)
            #expect(a.collect(other2) == 0)
            #expect(a.record.pointee.queueLength == 1)
        }
    }

    @Test func theOldestWaiterIsNeverPassedOverForLong() throws {
        // Worker 20 has one request at the head; worker 10 keeps releasing and queueing.
        // Its hand-offs may pass the head only while its own waiter is within 2 tickets.
        let table = try SlotTable.create(for: Self.config(slots: 2))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            a.take(1, for: 10, now: 0)
            let head = a.enqueue(20)!
            var mine = [a.enqueue(10)!, a.enqueue(10)!]
            var handedOff = 0
            for round in 0..<6 {
                mine.append(a.enqueue(10)!)
                _ = a.release(round % 2, by: 10, generation: 0, keep: false, countRequest: true, now: Double(round))
                if let s = a.collect(head) {
                    #expect(handedOff <= 1, "the head waited behind \(handedOff) hand-offs")
                    #expect(s == round % 2)
                    return
                }
                let t = mine.removeFirst()
                #expect(a.collect(t) == round % 2)
                handedOff += 1
            }
            Issue.record("the oldest waiter never got a slot")
        }
    }

    @Test func aFreshQueueLetsAWorkerKeepItsSlotsLongerWithinPatience() throws {
        // While the oldest waiter has waited under handOffPatience, a release reaches its
        // own waiter up to wideWindow tickets back (no reconnect); once it has waited
        // longer, the strict window of slotCount holds again.
        let table = try SlotTable.create(for: Self.config(slots: 2))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            a.take(1, for: 10, now: 0)
            let head = a.enqueue(20, now: 1.0)!
            _ = (0..<3).map { _ in a.enqueue(21, now: 1.0)! }
            let mine = a.enqueue(10, now: 1.0)!  // 4 behind the oldest: past slotCount, within wideWindow
            #expect(a.release(0, by: 10, generation: 0, keep: true, countRequest: true, now: 1.001).kept)
            #expect(a.collect(mine) == 0 && a.collect(head) == nil, "handed to its own waiter within the patience")
            let mine2 = a.enqueue(10, now: 1.002)!
            #expect(!a.release(1, by: 10, generation: 0, keep: true, countRequest: true, now: 1.0 + AppArea.handOffPatience + 0.001).kept)
            #expect(a.collect(head) == 1 && a.collect(mine2) == nil, "past the patience, the oldest first")
        }
    }

    @Test func theQueueHeadSkipsTicketsServedOutOfOrder() throws {
        // Hand-offs and cancels serve tickets behind the head; once the head itself is
        // served, it moves past all of them to the oldest live waiter, so the scans that
        // start at the head (ownWaiter, dispatch) stay short however long the run is.
        let table = try SlotTable.create(for: Self.config(slots: 1))
        table.withLock(0) { a in
            a.take(0, for: 10, now: 0)
            let head = a.enqueue(20)!
            let behind = (0..<5).map { _ in a.enqueue(21)! }
            let last = a.enqueue(22)!
            for t in behind { _ = a.cancel(t) }
            #expect(a.record.pointee.queueHead == head, "the head waits")
            _ = a.release(0, by: 10, generation: 0, keep: false, countRequest: true, now: 1)
            #expect(a.collect(head) == 0)
            #expect(a.record.pointee.queueHead == last, "past the cancelled tickets to the live one")
            #expect(a.record.pointee.queueLength == 1)
        }
    }
}
