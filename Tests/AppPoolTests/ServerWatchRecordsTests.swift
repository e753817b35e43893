import GatewayConfig
import GatewaySystem
import Exchanges
import Testing
@testable import AppPool

/// What the master's server watch writes into the slot table: probe outcomes, learned
/// capacities, looked-up addresses (the threads and sockets are in the integration tests).
@Suite struct ServerWatchRecordsTests {
    static func config(_ servers: String, extra: String = "") throws -> Configuration {
        let app = "[[app]]\nname = \"a\"\nservers = [\(servers)]\nmax_fails = 2\nfail_timeout = 10\n\(extra)"
        return try ConfigLoader.load(text: "[server]\nworkers = 2\n" + app, file: "t.toml", baseDirectory: "/", cpuCount: 2)
    }

    static let two = "{ address = \"127.0.0.2:9000\", max_conns = 1 }, { address = \"127.0.0.3:9000\", max_conns = 1 }"

    @Test("a good probe brings a down server back at once; failed probes mark it down and keep it down until one succeeds")
    func probes() throws {
        let table = try SlotTable.create(for: Self.config(Self.two))
        table.withLock(0) { a in
            // Two failed probes in a row (max_fails 2) mark server 1 down, as failed requests do.
            #expect(a.probeOutcome(server: 1, up: false, maxFails: 2, failTimeout: 10, untilNextProbe: 1, now: 0) == nil)
            #expect(a.probeOutcome(server: 1, up: false, maxFails: 2, failTimeout: 10, untilNextProbe: 1, now: 0) == .markedDown(10))
            #expect(a.pickSlot(for: 10, now: 1) == 0 && a.serverRows(now: 1).map(\.up) == [true, false])
            // Still failing near the end of the back-off: kept down until the next probe.
            #expect(a.probeOutcome(server: 1, up: false, maxFails: 2, failTimeout: 10, untilNextProbe: 5, now: 9) == nil)
            #expect(a.serverRows(now: 12).map(\.up) == [true, false])
            #expect(a.serverRows(now: 12)[1].lastError == .probe)
            // One good probe: back now, long before its back-off would have ended.
            #expect(a.probeOutcome(server: 1, up: true, maxFails: 2, failTimeout: 10, untilNextProbe: 1, now: 12) == .back)
            #expect(a.serverRows(now: 12).map(\.up) == [true, true])
            a.take(0, for: 10, now: 12)
            #expect(a.pickSlot(for: 10, now: 12) == 1)
            // Good news of an up server changes nothing.
            #expect(a.probeOutcome(server: 0, up: true, maxFails: 2, failTimeout: 10, untilNextProbe: 1, now: 12) == nil)
        }
    }

    @Test("one server alone is never marked down by its probes (there is nowhere else to go)")
    func single() throws {
        let table = try SlotTable.create(for: Self.config("{ address = \"127.0.0.2:9000\", max_conns = 2 }"))
        table.withLock(0) { a in
            for _ in 0..<5 { #expect(a.probeOutcome(server: 0, up: false, maxFails: 1, failTimeout: 10, untilNextProbe: 1, now: 0) == nil) }
            #expect(a.pickSlot(for: 10, now: 0) != nil)
        }
    }

    @Test("a server without max_conns starts at 8 of 64 slots, and is given what it says (at least 1, at most 64)")
    func capacity() throws {
        let config = try Self.config("{ address = \"127.0.0.2:9000\" }, { address = \"127.0.0.3:9000\", max_conns = 2 }")
        #expect(config.apps[0].servers.map(\.learnsCapacity) == [true, false])
        #expect(config.apps[0].slotCount == UpstreamServer.learnedCeiling + 2)
        let table = try SlotTable.create(for: config)
        table.withLock(0) { a in
            #expect(a.serverRows(now: 0).map(\.capacity) == [8, 2])
            #expect(a.record.pointee.usableSlots == 10)
            #expect(a.setCapacity(server: 0, 3, now: 0) == 3)
            #expect(a.setCapacity(server: 0, 3, now: 0) == nil)  // no change
            #expect(a.serverRows(now: 0).map(\.capacity) == [3, 2] && a.record.pointee.usableSlots == 5)
            var held: [Int] = []
            while let s = a.pickSlot(for: 10, now: 0) { a.take(s, for: 10, now: 0); held.append(s) }
            #expect(held.count == 5)
            #expect(held.filter { a.slots[$0].server == 0 }.count == 3)
            #expect(a.setCapacity(server: 0, 1000, now: 0) == UpstreamServer.learnedCeiling)
            #expect(a.setCapacity(server: 0, 0, now: 0) == 1)
            #expect(a.serverRows(now: 0)[0].learnedCapacity == 0)
        }
    }

    @Test("a looked-up address is kept as plain integers; each change bumps its version")
    func resolved() throws {
        let table = try SlotTable.create(for: Self.config(Self.two))
        let x = try #require(Socket.pack("10.0.0.5")), y = try #require(Socket.pack("fd00::5"))
        table.withLock(0) { a in
            #expect(a.resolved(server: 1) == nil)
            #expect(a.setResolved(server: 1, x) == (true, true))
            #expect(a.setResolved(server: 1, x) == (false, false))
            #expect(a.setResolved(server: 1, y) == (true, false))
            #expect(a.resolved(server: 1) == y && a.resolved(server: 0) == nil)
            #expect(a.slots[1].resolvedVersion == 2)
        }
        #expect(Socket.unpack(x) == "10.0.0.5" && Socket.unpack(y) == "fd00::5")
        #expect(Socket.pack("example.com") == nil && Socket.pack("10.0.0.256") == nil)
    }
}
