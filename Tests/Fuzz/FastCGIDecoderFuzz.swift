// libFuzzer target for FastCGIDecoder and the CGI response head parser that reads its
// STDOUT (built by scripts/fuzz). Invariant: decode or throw FastCGIError / CGIResponseError,
// never crash or hang; whole and byte-by-byte input agree.
import FastCGIWire
import CGIProtocol

struct Outcome: Equatable {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var events: [String] = []
    var failed = false
    var cgiHead: String? = nil
}

func run(_ input: [UInt8], piece: Int) -> Outcome {
    var decoder = FastCGIDecoder(requestID: 1)
    var out = Outcome()
    var buffer: [UInt8] = []
    var fed = 0
    var steps = 0
    outer: while fed < input.count {
        let n = min(piece, input.count - fed)
        buffer += input[fed..<(fed + n)]
        fed += n
        while true {
            steps += 1
            precondition(steps < 10 * input.count + 100, "decoder made no progress")
            let s: FastCGIStep
            do { s = try decoder.decode(buffer[...]) } catch { out.failed = true; break outer }
            precondition(s.consumed <= buffer.count)
            switch s.event {
            case .stdout(let r): out.stdout += buffer[r]
            case .stderr(let r): out.stderr += buffer[r]
            case .endRequest(let a, let p): out.events.append("end \(a) \(p)")
            case .getValuesResult(let pairs): out.events.append("values \(pairs.count)")
            case .unknownType(let t): out.events.append("unknown \(t)")
            case nil: break
            }
            buffer.removeFirst(s.consumed)
            if case .endRequest? = s.event { decoder.startRequest(1) }
            if s.event == nil && s.consumed == 0 { break }
        }
    }
    // The STDOUT stream goes through the CGI head parser, in the same piece size.
    var head = CGIResponseHeadParser(maxHeadSize: 512)
    var i = 0
    while i < out.stdout.count {
        i = min(out.stdout.count, i + piece)
        do {
            let (consumed, h) = try head.parse(out.stdout[0..<i])
            if let h { precondition(consumed <= i); out.cgiHead = "\(h.status) \(h.kind) \(h.headers.count) \(consumed)"; break }
        } catch {
            out.cgiHead = "error"
            break
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    agreeWholeAndBytewise(data, size) { input, piece in run(input, piece: piece) }
}
