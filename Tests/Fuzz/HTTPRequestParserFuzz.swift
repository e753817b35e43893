// libFuzzer target for HTTPRequestParser (built by scripts/fuzz, not by SwiftPM).
// Invariant (h11's): every input either parses or throws an HTTPParseError; never a
// crash or a hang; and feeding it whole or one byte at a time gives the same heads,
// the same body bytes and the same error status.
import HTTPWire

struct Outcome: Equatable {
    var heads: [String] = []
    var body: [UInt8] = []
    var ends = 0
    var errorStatus: Int? = nil
}

let fuzzLimits = HTTPLimits(maxRequestLine: 256, maxHeaderCount: 16, maxHeaderFieldSize: 256,
                            maxHeadSize: 1024, maxChunkExtension: 32, maxBodySize: 4096)

func run(_ input: [UInt8], piece: Int) -> Outcome {
    var parser = HTTPRequestParser(limits: fuzzLimits)
    var out = Outcome()
    var buffer: [UInt8] = []
    var fed = 0
    var steps = 0
    while fed < input.count {
        let n = min(piece, input.count - fed)
        buffer += input[fed..<(fed + n)]
        fed += n
        while true {
            steps += 1
            precondition(steps < 10 * input.count + 100, "parser made no progress")
            let step: HTTPParseStep
            do {
                step = try parser.parse(buffer[...])
            } catch {
                precondition([400, 413, 414, 417, 431, 501, 505].contains(error.status), "unexpected status \(error.status)")
                out.errorStatus = error.status
                return out
            }
            precondition(step.consumed <= buffer.count, "consumed more than it was given")
            switch step.event {
            case .head(let h):
                out.heads.append("\(h.method) \(h.target) \(h.version) \(h.framing) \(h.keepAlive) \(h.headers.count)")
            case .body(let r):
                precondition(r.lowerBound >= 0 && r.upperBound <= step.consumed)
                out.body += buffer[r]
            case .end:
                out.ends += 1
            case nil:
                break
            }
            buffer.removeFirst(step.consumed)
            if step.event == nil && step.consumed == 0 { break }
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    agreeWholeAndBytewise(data, size) { input, piece in run(input, piece: piece) }
}
