import GatewaySystem
import HTTP2
import Exchanges

/// An HTTP/2 connection of the epoll worker: its session, and its streams, each a client
/// of its own (EpollClient with `stream`) whose session reads the stream's request as
/// HTTP/1.1 (H2Translation), so routing, the queue, the slots and every exchange are the
/// ones HTTP/1.1 requests have. A stream's output is read back (H1ResponseReader) and
/// framed by the session as flow control allows; past `H2Session.highWater` (64 KiB) the stream
/// holds its producer (its exchange stops reading the app), so a slow stream holds only
/// itself.
final class H2Connection {
    let session: H2Session
    var streams: [Int32: EpollClient] = [:]
    /// A GOAWAY was sent (the worker drains): the connection ends with its last stream.
    var goingAway = false
    /// `pumpH2` is on the stack; a call meanwhile asks it to go round once more.
    var pumping = false
    var pumpAgain = false
    /// The connection is in the worker's list of those to write at the end of the turn.
    var flushQueued = false

    init(session: H2Session) { self.session = session }
}

/// What makes a client one stream of an HTTP/2 connection.
final class H2Stream {
    unowned let parent: EpollClient
    let id: Int32
    var reader: H1ResponseReader
    /// The request body goes to the session chunked (no content-length was given).
    let chunkedBody: Bool
    /// The response's end (or its head without a body) went to the session.
    var ended = false

    init(parent: EpollClient, id: Int32, method: String, chunkedBody: Bool) {
        self.parent = parent
        self.id = id
        self.chunkedBody = chunkedBody
        reader = H1ResponseReader(requestMethod: method)
    }
}

/// The HTTP/2 connection's own output is pulled from the session only while less than
/// this waits for the socket (the session's frames wait in nghttp2 meanwhile).
private let connectionHighWater = 256 * 1024

extension EpollWorker {
    /// The first bytes of the connection are HTTP/2's (ALPN h2, or the h2c preface):
    /// from now on its bytes go to an HTTP/2 session.
    func startHTTP2(_ c: EpollClient) {
        guard let session = H2Session(clock: Host.monotonicSeconds) else { return closeClient(c) }
        let h2 = H2Connection(session: session)
        c.h2 = h2
        c.phase = .http2
        c.deadline = Host.monotonicSeconds() + max(timeouts.header, ctx.config.server.keepalive)
        let early = c.session.takeUnconsumed()
        h2Received(c, early[...])
    }

    /// The h2c preface ("PRI * HTTP/2.0"), at the start of what a plain connection sent.
    static let h2cPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    func beginsHTTP2(_ c: EpollClient) -> Bool {
        let input = c.session.unconsumed
        guard !input.isEmpty else { return false }
        return input.prefix(Self.h2cPreface.count).elementsEqual(Self.h2cPreface.prefix(input.count))
            && input.count >= 3  // "PRI": no HTTP/1.1 method begins so
    }

    /// Readiness of an HTTP/2 connection: its frames out, the client's bytes in.
    func h2Event(_ c: EpollClient) {
        if c.writable && c.outputPending > 0 {
            guard writeOutput(c) else { return closeClient(c) }
        }
        pumpH2(c)
        while !c.closed && c.readable {
            let n: Int?
            do { n = try c.fd.read(into: &scratch, from: 0) } catch { return closeClient(c) }
            guard let n else {
                c.readable = false
                break
            }
            if n < scratch.count { c.readable = false }
            if n == 0 { return closeClient(c) }
            if let tls = c.tls {
                var plain: [UInt8] = []
                switch tls.receive(scratch[0..<n], deliver: { plain += $0 }) {
                case .ok: c.out.pullTLS()
                default: return closeClient(c)
                }
                h2Received(c, plain[...])
            } else {
                h2Received(c, scratch[0..<n])
            }
        }
    }

    /// Plaintext from the client: the session's events carried out, its frames sent.
    func h2Received(_ c: EpollClient, _ bytes: ArraySlice<UInt8>) {
        guard let h2 = c.h2 else { return }
        let ok = bytes.isEmpty || h2.session.receive(bytes)
        c.deadline = Host.monotonicSeconds() + max(timeouts.send, ctx.config.server.keepalive)
        for event in h2.session.takeEvents() { h2Apply(c, h2, event) }
        if !ok {
            ctx.logger.info("HTTP/2 connection from \(c.remote.address) ended: \(h2.session.failure ?? "protocol error")")
        }
        pumpH2(c)
    }

    func h2Apply(_ c: EpollClient, _ h2: H2Connection, _ event: H2Session.Event) {
        switch event {
        case .request(let id, let fields, let endStream):
            guard let (head, chunked) = H2Translation.request(fields, body: !endStream) else {
                return h2.session.respond(stream: id, status: 400, fields: [], body: false)
            }
            let method = fields.first { $0.name == ":method" }?.value ?? "GET"
            let s = EpollClient(fd: c.fd, serial: c.serial, session: ctx.newStreamSession(),
                                stream: H2Stream(parent: c, id: id, method: method, chunkedBody: chunked))
            s.remote = c.remote
            s.local = c.local
            h2.streams[id] = s
            s.session.received(head[...])
            drive(s)
        case .data(let id, let bytes):
            guard let s = h2.streams[id], !s.closed, let link = s.stream else { return }
            if link.chunkedBody {
                var framed: [UInt8] = []
                H2Translation.chunk(bytes, into: &framed)
                s.session.received(framed[...])
            } else {
                s.session.received(bytes[...])
            }
            if s.phase == .session && s.session.wantsInput { drive(s) }
        case .endOfRequest(let id):
            guard let s = h2.streams[id], !s.closed, let link = s.stream, link.chunkedBody else { return }
            s.session.received(H2Translation.lastChunk[...])
            if s.phase == .session && s.session.wantsInput { drive(s) }
        case .closed(let id, _):
            // Reset by the client: what the stream still runs is abandoned. (Done: its
            // session ends it after its last steps.)
            guard let s = h2.streams[id], let link = s.stream else { return }
            if s.closed { h2.streams[id] = nil } else if !link.ended { closeClient(s) }
        case .room(let id):
            guard let s = h2.streams[id], !s.closed else { return }
            s.writable = true
            flushClient(s)
        }
    }

    /// The connection's frames to the socket (as much as it takes), and its end once the
    /// session is done or a GOAWAY's last stream is over.
    func pumpH2(_ c: EpollClient) {
        guard let h2 = c.h2, !c.closed else { return }
        // Not re-entered: an event below can make a stream write, which pumps again; the
        // frames must leave in the order the session made them.
        guard !h2.pumping else {
            h2.pumpAgain = true
            return
        }
        h2.pumping = true
        defer { h2.pumping = false }
        while c.outputPending < connectionHighWater {
            h2.pumpAgain = false
            var frames: [UInt8] = []
            h2.session.output(into: &frames)
            if !frames.isEmpty { c.out.queue(frames[...]) }
            // Framing the streams' bodies may have made room in them, or ended them.
            for event in h2.session.takeEvents() { h2Apply(c, h2, event) }
            if c.closed { return }
            if frames.isEmpty && !h2.pumpAgain { break }
        }
        // Written at the end of the loop's turn: the answers of many streams go out in
        // one write (and one TLS record), not one each.
        if c.outputPending > 0 && !h2.flushQueued {
            h2.flushQueued = true
            h2Ready.append(c)
        }
        guard c.outputPending == 0 else { return }
        if h2.session.failure != nil {
            closeClient(c)  // a protocol error or a flood: no more time for it
        } else if !h2.session.alive || (h2.goingAway && h2.streams.isEmpty) {
            // Done (the last stream after our GOAWAY, or the client's GOAWAY): the client
            // may still be sending (streams we refused); closing with its bytes unread
            // would reset the connection and could destroy answers it has not read yet.
            startLingering(c)
        }
    }

    /// A stream's output: read back from HTTP/1.1 and handed to the session, as far as the
    /// stream's buffer has room (else it waits for a `room` event). False: it failed.
    func writeStream(_ s: EpollClient) -> Bool {
        guard let link = s.stream, let h2 = link.parent.h2, !link.parent.closed else { return false }
        while s.out.pending > 0 {
            let room = H2Session.highWater - h2.session.buffered(stream: link.id)
            guard room > 0 else {
                s.writable = false
                break
            }
            switch s.out.take(max: room) {
            case .success(let bytes): deliver(link, h2, link.reader.receive(bytes[...]))
            case .failure: return false
            }
        }
        pumpH2(link.parent)
        return true
    }

    func deliver(_ link: H2Stream, _ h2: H2Connection, _ outputs: [H1ResponseReader.Output]) {
        for o in outputs {
            switch o {
            case .head(let status, let fields, let body):
                h2.session.respond(stream: link.id, status: status, block: fields, body: body)
                if !body { link.ended = true }
            case .body(let bytes):
                h2.session.send(stream: link.id, bytes[...], end: false)
            case .end:
                if !link.ended { h2.session.send(stream: link.id, [][...], end: true) }
                link.ended = true
            }
        }
    }

    /// A stream's client is done (its response complete, or abandoned): an unfinished
    /// response is reset; the connection goes on.
    func closeStream(_ s: EpollClient, _ link: H2Stream) {
        s.closed = true
        s.out.discard()
        if let r = s.request {
            abandonUpstream(s, r)
            r.closeBody()
        }
        let parent = link.parent
        guard let h2 = parent.h2 else { return }
        if !link.ended {
            deliver(link, h2, link.reader.closed())
            if !link.ended { h2.session.reset(stream: link.id) }
        }
        // (Answered before the request's body was all sent, a 413: RFC 9113 §8.1 allows a
        // RST_STREAM NO_ERROR to stop the upload, but curl up to 7.88 takes it for an
        // error and drops the answer; the rest of the body is read and dropped instead.)
        if h2.streams[link.id] === s { h2.streams[link.id] = nil }
        pumpH2(parent)
    }

    /// The HTTP/2 connection's deadline passed: idle, or its client stopped reading.
    func h2TimedOut(_ c: EpollClient, _ now: Double) {
        guard let h2 = c.h2 else { return closeClient(c) }
        let working = h2.streams.values.contains { $0.phase == .queued || $0.phase == .upstream }
        if working && c.outputPending == 0 {
            c.deadline = now + max(timeouts.send, ctx.config.server.keepalive)  // the streams' exchanges keep their own time
            return
        }
        closeClient(c)
    }

    /// The HTTP/2 connections with frames to write, at the end of the loop's turn (and
    /// what the session has next, while the socket takes it).
    func flushHTTP2() {
        while !h2Ready.isEmpty {
            let ready = h2Ready
            h2Ready = []
            for c in ready where !c.closed {
                c.h2?.flushQueued = false
                if c.writable && c.outputPending > 0 && !writeOutput(c) {
                    closeClient(c)
                    continue
                }
                if c.writable { pumpH2(c) }
            }
        }
    }

    /// While draining: GOAWAY on each HTTP/2 connection; it ends with its last stream.
    func goAwayHTTP2() {
        for case let c? in clients where c.h2 != nil && !c.h2!.goingAway {
            c.h2!.goingAway = true
            c.h2!.session.goAway()
            pumpH2(c)
        }
    }
}
