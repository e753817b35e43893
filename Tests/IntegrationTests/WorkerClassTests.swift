import Foundation
import GatewaySystem
import Testing
import Glibc

/// What sets the worker classes apart: how slow clients and keep-alive connections
/// weigh on them.
@Suite("worker classes", .serialized)
struct WorkerClassTests {
    static let config = "[[app]]\nname = \"c\"\ncommand = [\"\(repositoryRoot)/apps/bin/c-app\"]\nprocesses = 2\n[[route]]\npath = \"/c\"\napp = \"c\"\n"

    /// Opens `count` connections that send part of a request head and then stall.
    static func slowClients(_ port: Int, count: Int) throws -> [Int32] {
        var fds: [Int32] = []
        for _ in 0..<count {
            let fd = try Socket.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 5000)
            _ = try fd.write(Array("GET /c/hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8), from: 0)
            fds.append(fd.rawValue)
        }
        return fds
    }

    @Test(arguments: ["thread", "epoll"])
    func slowlorisDoesNotStopTheWorker(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, server: "worker_class = \"\(workerClass)\"\nthreads = 2", workers: 1)
        defer { server.stop() }
        let slow = try Self.slowClients(server.port, count: 300)
        defer { for fd in slow { Glibc.close(fd) } }
        let t = Date()
        for _ in 0..<20 {
            let r = try http(server.port, "GET", "/c/hello", timeout: 5)
            #expect(r.status == 200)
        }
        #expect(Date().timeIntervalSince(t) < 3, "20 requests beside 300 stalled clients took \(Date().timeIntervalSince(t)) s")
    }

    @Test func headerTimeoutFreesASyncWorker() throws {
        let server = try GatewaydServer(config: Self.config, server: "[timeouts]\nheader = 1\n", workers: 1)
        defer { server.stop() }
        let slow = try Self.slowClients(server.port, count: 1)
        defer { for fd in slow { Glibc.close(fd) } }
        usleep(100_000)
        let t = Date()
        let r = try http(server.port, "GET", "/c/hello", timeout: 10)
        #expect(r.status == 200)
        let waited = Date().timeIntervalSince(t)
        #expect(waited > 0.5 && waited < 3, "the one sync worker was free again after \(waited) s")
        var buf = [UInt8](repeating: 0, count: 512)
        let n = read(slow[0], &buf, buf.count)
        #expect(n > 0 && String(decoding: buf[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 408"))
    }

    @Test(arguments: ["thread", "epoll"])
    func oneWorkerServesManyKeepAliveClients(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, server: "worker_class = \"\(workerClass)\"\nthreads = 2\nkeepalive = 30", workers: 1)
        defer { server.stop() }
        // 50 keep-alive connections, each used twice, interleaved: the loop holds them, not the 2 threads.
        var conns: [FileDescriptor] = []
        for _ in 0..<50 { conns.append(try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)) }
        defer { for c in conns { try? c.close() } }
        for round in 0..<2 {
            for c in conns { _ = try c.write(Array("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n".utf8), from: 0) }
            for (i, c) in conns.enumerated() {
                var data: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                // The whole chunked response, up to its last chunk.
                while !String(decoding: data, as: UTF8.self).hasSuffix("\r\n0\r\n\r\n") {
                    guard try c.waitReadable(timeoutMilliseconds: 5000), let n = try c.read(into: &chunk, from: 0), n > 0 else { break }
                    data += chunk[0..<n]
                }
                let text = String(decoding: data, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 200") && text.contains("Hello from C"), "round \(round) connection \(i): \(text)")
            }
        }
    }

    /// worker_connections caps what one worker holds: with 10 idle keep-alive clients open,
    /// an 11th waits in the listen backlog until one of them leaves.
    @Test(arguments: ["thread", "epoll"])
    func workerConnectionsCapsOpenConnections(workerClass: String) throws {
        let server = try GatewaydServer(config: Self.config, server: "worker_class = \"\(workerClass)\"\nworker_connections = 10\nkeepalive = 30",
                                        workers: 1)
        defer { server.stop() }
        var idle: [FileDescriptor] = []
        defer { for c in idle { try? c.close() } }
        for _ in 0..<10 {
            let c = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
            _ = try c.write(Array("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n".utf8), from: 0)
            #expect(try c.waitReadable(timeoutMilliseconds: 5000))
            idle.append(c)
        }
        usleep(200_000)
        let extra = try Socket.connectTCP(host: "127.0.0.1", port: server.port, timeoutMilliseconds: 5000)
        defer { try? extra.close() }
        _ = try extra.write(Array("GET /c/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), from: 0)
        #expect(try !extra.waitReadable(timeoutMilliseconds: 700), "an 11th connection was served beside 10 open ones")
        try idle.removeFirst().close()
        let reply = String(decoding: try readAll(extra, timeout: 5), as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply)")
    }
}
