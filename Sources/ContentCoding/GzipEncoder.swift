internal import CZlib

/// A gzip stream, fed a piece at a time (zlib's deflate behind CZlib). Each piece can end
/// with a sync flush, so what the client gets keeps pace with what the app sends (a
/// streamed page is not held back until the compressor's window fills); `finish` writes
/// the trailer. Owned by one response, on one thread.
public final class GzipEncoder {
    private let stream: OpaquePointer
    /// Output is written here first, then appended to the caller's buffer.
    private var scratch = [UInt8](repeating: 0, count: 16384)

    /// `expectedLength`: the body's length when known; a short body gets a smaller window
    /// and hash (nginx's rule), since zlib's 256 KiB per stream would be spent on a page
    /// of a few KiB.
    public init?(level: Int, expectedLength: UInt64? = nil) {
        var windowBits = 15, memLevel = 8
        if let n = expectedLength, n > 0 {
            while windowBits > 9 && n < UInt64((1 << (windowBits - 1)) - 262) {
                windowBits -= 1
                memLevel -= 1
            }
            memLevel = max(memLevel, 1)
        }
        guard let s = gw_gzip_new(Int32(min(max(level, 1), 9)), Int32(windowBits), Int32(memLevel)) else { return nil }
        stream = s
    }

    deinit { gw_gzip_free(stream) }

    /// Compresses `bytes` onto `out`; with `flush`, everything so far comes out now.
    public func compress(_ bytes: ArraySlice<UInt8>, flush: Bool, into out: inout [UInt8]) {
        bytes.withUnsafeBytes { run($0, mode: flush ? Int32(GW_GZIP_SYNC) : Int32(GW_GZIP_NONE), into: &out) }
    }

    /// The rest and the gzip trailer onto `out`.
    public func finish(into out: inout [UInt8]) {
        run(UnsafeRawBufferPointer(start: nil, count: 0), mode: Int32(GW_GZIP_FINISH), into: &out)
    }

    private func run(_ input: UnsafeRawBufferPointer, mode: Int32, into out: inout [UInt8]) {
        var offset = 0
        while true {
            var consumed = 0, produced = 0
            let r = scratch.withUnsafeMutableBytes { o in
                gw_gzip_run(stream, input.baseAddress.map { $0 + offset }, input.count - offset, mode, o.baseAddress, o.count,
                            &consumed, &produced)
            }
            offset += consumed
            out += scratch[0..<produced]
            if r != 1 { return }  // done (or a zlib error, which deflate does not make on valid input)
        }
    }
}
