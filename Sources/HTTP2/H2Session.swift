internal import CNGHTTP2

/// The server side of one HTTP/2 connection, sans-IO: bytes from the client go in
/// (`receive`), what happened comes out as events (a request's head, its body, its end,
/// a reset), responses go in per stream, and the frames to send come out (`output`).
/// The framing, HPACK, flow control and the protocol's own checks are nghttp2's; the
/// limits on top (streams, header list size, reset, CONTINUATION, PING and SETTINGS
/// floods) are set here. One thread owns it.
public final class H2Session {
    public enum Event: Equatable {
        /// A request's head: pseudo-header fields first, as nghttp2 validated them.
        /// `endStream`: it has no body.
        case request(stream: Int32, fields: [Field], endStream: Bool)
        /// A piece of a request's body.
        case data(stream: Int32, bytes: [UInt8])
        /// The request's body is complete.
        case endOfRequest(stream: Int32)
        /// The stream is over (reset by the client, or by us, or done): its work stops.
        case closed(stream: Int32, errorCode: UInt32)
        /// A stream's response buffer has room again (it had more than `highWater`).
        case room(stream: Int32)
    }

    public struct Field: Equatable, Sendable {
        public let name: String
        public let value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }

    public struct Limits: Sendable {
        public var maxConcurrentStreams: UInt32 = 100
        /// Bytes of a request's header fields (names, values, 32 per field, as RFC 9113
        /// §6.5.2 counts them).
        public var maxHeaderListSize: UInt32 = 65536
        /// What a stream may send us before we say more (uploads).
        public var initialWindow: UInt32 = 1 << 20
        /// Client resets (RST_STREAM): a bucket of `resetBurst`, refilled `resetRate` a
        /// second; empty, the connection ends (CVE-2023-44487, "rapid reset").
        public var resetBurst: UInt64 = 1000
        public var resetRate: UInt64 = 33
        /// CONTINUATION frames after one HEADERS (CVE-2024-27316).
        public var maxContinuations: Int = 8
        /// PING and SETTINGS frames from the client: a bucket of `controlBurst`,
        /// refilled `controlRate` a second (a flood makes us answer each one).
        public var controlBurst: Double = 200
        public var controlRate: Double = 20
        public init() {}
    }

    /// A stream's response body waiting for nghttp2 to frame it (as flow control allows).
    final class Outgoing {
        var bytes: [UInt8] = []
        var start = 0
        var ended = false
        var deferred = false
        var wantsRoom = false
        var pending: Int { bytes.count - start }
    }

    private var session: OpaquePointer?
    private var events: [Event] = []
    private var heads: [Int32: (fields: [Field], size: Int)] = [:]
    private var outgoing: [Int32: Outgoing] = [:]
    private let limits: Limits
    private var controlTokens: Double
    private var controlRefilled: Double
    private let clock: () -> Double
    /// Why the connection ends, once it does (a protocol error, a flood).
    public private(set) var failure: String? = nil
    /// A stream's buffered response beyond this holds its producer (`room` when it drains).
    public static let highWater = 64 * 1024

    /// `clock`: monotonic seconds (the flood buckets refill by it).
    public init?(limits: Limits = Limits(), clock: @escaping () -> Double) {
        self.limits = limits
        self.clock = clock
        controlTokens = limits.controlBurst
        controlRefilled = clock()
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0 else { return nil }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrame)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onData)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { return nil }
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_stream_reset_rate_limit(option, limits.resetBurst, limits.resetRate)
        nghttp2_option_set_max_continuations(option, limits.maxContinuations)
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard nghttp2_session_server_new2(&session, callbacks, me, option) == 0 else { return nil }
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: limits.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: limits.initialWindow),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: limits.maxHeaderListSize),
        ]
        guard nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count) == 0 else { return nil }
        // The connection's own window as large as a stream's, so one upload is not held
        // to 64 KiB in flight.
        _ = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(limits.initialWindow))
    }

    deinit { nghttp2_session_del(session) }

    // MARK: - Input

    /// Bytes from the client. False: the connection is over (send `output`, then close).
    @discardableResult
    public func receive(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard failure == nil else { return false }
        let r = bytes.withUnsafeBytes { b in nghttp2_session_mem_recv(session, b.baseAddress?.assumingMemoryBound(to: UInt8.self), b.count) }
        if r < 0 {
            failure = String(cString: nghttp2_strerror(Int32(r)))
            return false
        }
        return failure == nil
    }

    /// What happened since the last call.
    public func takeEvents() -> [Event] {
        defer { events = [] }
        return events
    }

    /// Whether the connection still has something to do (nghttp2 wants to read or write).
    public var alive: Bool { failure == nil && (nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0) }

    // MARK: - Responses

    /// A response's head. `body`: a body follows (`send`), else the stream ends here.
    public func respond(stream: Int32, status: Int, fields: [Field], body: Bool) {
        respond(stream: stream, status: status, block: H2FieldBlock(fields), body: body)
    }

    /// A response's head from a field block (names already lowercased): nghttp2 copies
    /// the names and values straight from it.
    public func respond(stream: Int32, status: Int, block: H2FieldBlock, body: Bool) {
        var code = Array(String(status).utf8)
        var spans = block.spans
        var storage = block.storage
        let statusName = Self.statusName
        storage.withUnsafeMutableBufferPointer { st in
            code.withUnsafeMutableBufferPointer { c in
                statusName.withUnsafeBufferPointer { sn in
                    var nva: [nghttp2_nv] = []
                    nva.reserveCapacity(1 + spans.count / 4)
                    let flags = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                    nva.append(nghttp2_nv(name: UnsafeMutablePointer(mutating: sn.baseAddress!), value: c.baseAddress!,
                                          namelen: sn.count, valuelen: c.count, flags: flags))
                    let base = st.baseAddress ?? c.baseAddress!
                    for k in stride(from: 0, to: spans.count, by: 4) {
                        nva.append(nghttp2_nv(name: base + Int(spans[k]), value: base + Int(spans[k + 2]),
                                              namelen: Int(spans[k + 1] - spans[k]), valuelen: Int(spans[k + 3] - spans[k + 2]), flags: flags))
                    }
                    if body {
                        outgoing[stream] = Outgoing()
                        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onReadBody)
                        _ = nghttp2_submit_response(session, stream, nva, nva.count, &provider)
                    } else {
                        _ = nghttp2_submit_response(session, stream, nva, nva.count, nil)
                    }
                }
            }
        }
        spans = []
    }

    private static let statusName = Array(":status".utf8)


    /// A piece of a response's body; `end`: the last.
    public func send(stream: Int32, _ bytes: ArraySlice<UInt8>, end: Bool) {
        guard let out = outgoing[stream] else { return }
        if out.start > 0 && out.start == out.bytes.count {
            out.bytes.removeAll(keepingCapacity: true)
            out.start = 0
        }
        out.bytes += bytes
        if end { out.ended = true }
        if out.deferred {
            out.deferred = false
            _ = nghttp2_session_resume_data(session, stream)
        }
    }

    /// Response bytes of the stream not yet framed (the producer holds while it is over
    /// `highWater`, and asks for `room`).
    public func buffered(stream: Int32) -> Int {
        guard let out = outgoing[stream] else { return 0 }
        if out.pending >= Self.highWater { out.wantsRoom = true }
        return out.pending
    }

    /// Ends a stream with RST_STREAM (the response cannot be completed).
    public func reset(stream: Int32, errorCode: UInt32 = 2) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, errorCode)
    }

    /// GOAWAY naming the last stream we took: those begun run to their end, later ones are
    /// refused (the client knows they were not processed, and may send them again).
    public func goAway() {
        let last = nghttp2_session_get_last_proc_stream_id(session)
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
    }

    /// The frames to send now, appended to `out`.
    public func output(into out: inout [UInt8]) {
        while true {
            var p: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &p)
            if n < 0 {
                failure = failure ?? String(cString: nghttp2_strerror(Int32(n)))
                return
            }
            guard n > 0, let p else { return }
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        }
    }

    // MARK: - From nghttp2's callbacks

    fileprivate func beginHeaders(_ stream: Int32) {
        heads[stream] = ([], 0)
    }

    /// False: the stream's field list is over the limit (the stream is reset).
    fileprivate func header(_ stream: Int32, _ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard var h = heads[stream] else { return true }  // trailers: not kept
        h.size += name.count + value.count + 32
        guard h.size <= Int(limits.maxHeaderListSize) else {
            heads[stream] = nil
            return false
        }
        h.fields.append(Field(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        heads[stream] = h
        return true
    }

    fileprivate func frame(type: UInt8, flags: UInt8, stream: Int32, category: nghttp2_headers_category?) {
        let endStream = flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch Int(type) {
        case Int(NGHTTP2_HEADERS.rawValue):
            if category == NGHTTP2_HCAT_REQUEST, let h = heads.removeValue(forKey: stream) {
                events.append(.request(stream: stream, fields: h.fields, endStream: endStream))
            } else if endStream {
                events.append(.endOfRequest(stream: stream))  // after trailers
            }
        case Int(NGHTTP2_DATA.rawValue):
            if endStream { events.append(.endOfRequest(stream: stream)) }
        case Int(NGHTTP2_PING.rawValue), Int(NGHTTP2_SETTINGS.rawValue):
            if flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { spendControlToken() }
        default:
            break
        }
    }

    /// A PING or SETTINGS from the client; too many too fast ends the connection.
    private func spendControlToken() {
        let now = clock()
        controlTokens = min(limits.controlBurst, controlTokens + (now - controlRefilled) * limits.controlRate)
        controlRefilled = now
        controlTokens -= 1
        if controlTokens < 0 && failure == nil {
            failure = "PING or SETTINGS flood"
            _ = nghttp2_session_terminate_session(session, UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue))
        }
    }

    fileprivate func data(_ stream: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        events.append(.data(stream: stream, bytes: Array(bytes)))
    }

    fileprivate func streamClosed(_ stream: Int32, _ code: UInt32) {
        heads[stream] = nil
        outgoing[stream] = nil
        events.append(.closed(stream: stream, errorCode: code))
    }

    /// nghttp2 asks for up to `length` bytes of a stream's body.
    fileprivate func readBody(_ stream: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let out = outgoing[stream] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = min(length, out.pending)
        if n > 0 {
            out.bytes.withUnsafeBufferPointer { b in buffer.update(from: b.baseAddress! + out.start, count: n) }
            out.start += n
        }
        if out.pending == 0 && out.ended {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            outgoing[stream] = nil
            return n
        }
        if out.wantsRoom && out.pending < Self.highWater / 2 {
            out.wantsRoom = false
            events.append(.room(stream: stream))
        }
        if n == 0 {
            out.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return n
    }
}

// The C callbacks: each finds its session through user_data.

private func me(_ p: UnsafeMutableRawPointer?) -> H2Session { Unmanaged<H2Session>.fromOpaque(p!).takeUnretainedValue() }

private let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, user in
    guard let f = frame?.pointee, f.hd.type == UInt8(NGHTTP2_HEADERS.rawValue), f.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
    me(user).beginHeaders(f.hd.stream_id)
    return 0
}

private let onHeader: nghttp2_on_header_callback = { _, frame, name, namelen, value, valuelen, _, user in
    guard let f = frame?.pointee else { return 0 }
    let ok = me(user).header(f.hd.stream_id, UnsafeBufferPointer(start: name, count: namelen), UnsafeBufferPointer(start: value, count: valuelen))
    return ok ? 0 : Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
}

private let onFrame: nghttp2_on_frame_recv_callback = { _, frame, user in
    guard let f = frame?.pointee else { return 0 }
    let category = f.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) ? f.headers.cat : nil
    me(user).frame(type: f.hd.type, flags: f.hd.flags, stream: f.hd.stream_id, category: category)
    return 0
}

private let onData: nghttp2_on_data_chunk_recv_callback = { _, _, stream, data, len, user in
    me(user).data(stream, UnsafeBufferPointer(start: data, count: len))
    return 0
}

private let onStreamClose: nghttp2_on_stream_close_callback = { _, stream, code, user in
    me(user).streamClosed(stream, code)
    return 0
}

private let onReadBody: nghttp2_data_source_read_callback = { _, stream, buffer, length, flags, _, user in
    me(user).readBody(stream, buffer!, length, flags!)
}
