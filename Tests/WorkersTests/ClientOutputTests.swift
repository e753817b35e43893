import GatewaySystem
import Testing
@testable import Workers

/// The one client writer, on a real loopback TCP connection: queued bytes, then a file
/// range by sendfile; a full socket, a reader that leaves, a file that shrank.
@Suite struct ClientOutputTests {
    /// A connected pair: (our non-blocking side, the peer).
    static func pair() throws -> (FileDescriptor, FileDescriptor) {
        let listener = try Socket.listenTCP(host: "127.0.0.1", port: 0, backlog: 4)
        defer { try? listener.close() }
        let peer = try Socket.connectTCP(host: "127.0.0.1", port: try Socket.localPort(listener))
        let ours = try #require(try Socket.accept(listener, nonBlocking: true))
        return (ours, peer)
    }

    static func readAll(_ fd: FileDescriptor, count: Int) throws -> [UInt8] {
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while got.count < count {
            guard let n = try fd.read(into: &buffer, from: 0), n > 0 else { break }
            got += buffer[0..<n]
        }
        return got
    }

    @Test func theHeadThenTheFileRangeArriveInOrder() throws {
        let (ours, peer) = try Self.pair()
        defer { try? ours.close(); try? peer.close() }
        let content = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let file = try Host.anonymousFile(contents: content)
        var out = ClientOutput()
        out.queue(Array("HEAD\r\n\r\n".utf8)[...])
        out.queueFile(OpenFile(file), offset: 1000, length: 50_000)
        #expect(out.pending == 8 + 50_000)
        #expect(out.write(to: ours) == .done)
        #expect(out.pending == 0)
        let got = try Self.readAll(peer, count: 8 + 50_000)
        #expect(got == Array("HEAD\r\n\r\n".utf8) + content[1000..<51_000])
    }

    @Test func aFullSocketWaitsAndABudgetYieldsTheTurn() throws {
        let (ours, peer) = try Self.pair()
        defer { try? ours.close(); try? peer.close() }
        let big = [UInt8](repeating: 65, count: 8 << 20)  // more than the socket buffers hold
        var out = ClientOutput()
        #expect(out.send(big, to: ours) == .wouldBlock, "the rest is queued")
        #expect(out.pending > 0 && out.pending < big.count)
        let left = out.pending
        let got = try Self.readAll(peer, count: big.count - left)
        #expect(got.count == big.count - left)
        // A file with a budget: one turn's share, then the rest.
        let (ours2, peer2) = try Self.pair()
        defer { try? ours2.close(); try? peer2.close() }
        var out2 = ClientOutput()
        out2.queueFile(OpenFile(try Host.anonymousFile(contents: [UInt8](repeating: 1, count: 3000))), offset: 0, length: 3000)
        #expect(out2.write(to: ours2, fileBudget: 1000) == .budgetSpent)
        #expect(out2.pending == 2000)
        #expect(out2.write(to: ours2) == .done)
        #expect(try Self.readAll(peer2, count: 3000).count == 3000)
    }

    @Test func aReaderThatLeftAndAFileThatShrankFail() throws {
        Signals.ignore(13)  // SIGPIPE, as every gatewayd process ignores it: a reset is an error return
        let (ours, peer) = try Self.pair()
        try peer.close()
        var out = ClientOutput()
        var progress = ClientOutput.Progress.done
        for _ in 0..<50 {  // the first writes may still land in the buffer before the reset
            out.queue([UInt8](repeating: 0, count: 65536)[...])
            progress = out.write(to: ours)
            if progress == .failed { break }
            Host.sleep(seconds: 0.01)
        }
        #expect(progress == .failed)
        try? ours.close()

        let (ours2, peer2) = try Self.pair()
        defer { try? ours2.close(); try? peer2.close() }
        var out2 = ClientOutput()
        out2.queueFile(OpenFile(try Host.anonymousFile(contents: [UInt8](repeating: 2, count: 100))), offset: 0, length: 500)
        #expect(out2.write(to: ours2) == .fileShrank, "100 bytes sent of the 500 promised")
        out2.discard()
        #expect(out2.pending == 0)
    }
}
