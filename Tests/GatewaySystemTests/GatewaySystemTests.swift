import Glibc
import Testing
@testable import GatewaySystem

@Suite("system calls")
struct GatewaySystemTests {
    @Test func pipeCarriesBytesAndReportsWouldBlock() throws {
        let (r, w) = try Pipe.make(nonBlocking: true)
        defer { try? r.close(); try? w.close() }
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(try buf.withUnsafeMutableBytes { try r.read(into: $0) } == nil)  // nothing yet: EAGAIN
        try w.writeAll(Array("hello".utf8))
        let n = try buf.withUnsafeMutableBytes { try r.read(into: $0) }
        #expect(n == 5)
        #expect(Array(buf[0..<5]) == Array("hello".utf8))
        // Both ends are close-on-exec.
        #expect(fcntl(r.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(w.rawValue, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func tcpListenAcceptAndEpoll() throws {
        let listener = try Socket.listenTCP(host: "127.0.0.1", port: 0, backlog: 16)
        defer { try? listener.close() }
        try listener.setNonBlocking(true)
        let port = try Socket.localPort(listener)
        #expect(port > 0)
        #expect(try Socket.accept(listener, nonBlocking: true) == nil)

        let ep = try Epoll()
        defer { try? ep.fd.close() }
        try ep.add(listener, [.readable], data: 42)
        let client = try Socket.connectTCP(host: "127.0.0.1", port: port)
        defer { try? client.close() }

        let events = Epoll.EventBuffer(capacity: 8)
        var seen: [(Epoll.Events, UInt64)] = []
        try ep.wait(buffer: events, timeoutMilliseconds: 2000) { seen.append(($0, $1)) }
        #expect(seen.count == 1)
        #expect(seen.first?.1 == 42)
        #expect(seen.first?.0.contains(.readable) == true)

        let conn = try #require(try Socket.accept(listener, nonBlocking: true))
        defer { try? conn.close() }
        #expect(fcntl(conn.rawValue, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(conn.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        try client.writeAll(Array("ping".utf8))
        var buf = [UInt8](repeating: 0, count: 8)
        var got: Int? = nil
        for _ in 0..<100 where got == nil {
            got = try buf.withUnsafeMutableBytes { try conn.read(into: $0) }
            if got == nil { usleep(10_000) }
        }
        #expect(got == 4)
    }

    @Test func unixSocketHasItsModeAndReplacesAStaleFile() throws {
        let path = "/tmp/gatewayd-test-\(getpid()).sock"
        defer { unlink(path) }
        let first = try Socket.listenUnix(path: path, backlog: 4, mode: 0o600)
        try first.close()
        // The socket file is left behind, as after a crash: binding again must work.
        let l = try Socket.listenUnix(path: path, backlog: 4, mode: 0o640)
        defer { try? l.close() }
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o640)
        let c = try Socket.connectUnix(path: path)
        try c.close()
    }

    @Test func errorsNameTheCall() {
        #expect(throws: SystemError.self) { try Socket.listenTCP(host: "not-an-ip", port: 1, backlog: 1) }
        do {
            _ = try Host.readFile("/nonexistent/gatewayd.toml")
            Issue.record("read a missing file")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description.hasPrefix("open(/nonexistent/gatewayd.toml): No such file"))
        }
    }

    @Test func sendfileCopiesAFileRange() throws {
        let path = "/tmp/gatewayd-sendfile-\(getpid())"
        defer { unlink(path) }
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        let f = FileDescriptor(open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0o600))
        defer { try? f.close() }
        try f.writeAll(data)
        let listener = try Socket.listenTCP(host: "127.0.0.1", port: 0, backlog: 4)
        defer { try? listener.close() }
        let client = try Socket.connectTCP(host: "127.0.0.1", port: try Socket.localPort(listener))
        defer { try? client.close() }
        let server = try #require(try Socket.accept(listener))
        var offset = 1000
        var sent = 0
        while sent < 50_000 { sent += try server.sendfile(from: f, offset: &offset, count: 50_000 - sent) ?? 0 }
        try server.close()
        #expect(offset == 51_000)
        var received: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while let n = try buf.withUnsafeMutableBytes({ try client.read(into: $0) }), n > 0 { received += buf[0..<n] }
        #expect(received == Array(data[1000..<51_000]))
    }

    @Test func hostFacts() {
        #expect(Host.cpuCount() >= 1)
        #expect(Host.currentDirectory().hasPrefix("/"))
        #expect(Host.epochSeconds() > 1_700_000_000)
    }
}
