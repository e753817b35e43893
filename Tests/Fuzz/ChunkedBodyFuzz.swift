// libFuzzer target for HTTPRequestParser's chunked body framing (built by scripts/fuzz):
// every input follows a fixed chunked request head, so the fuzzer spends its time on
// chunk sizes, extensions, data CRLFs and trailers. Invariant: parse or throw an
// HTTPParseError; never crash or hang; whole and byte-by-byte input agree.
import HTTPWire

struct Outcome: Equatable {
    var body: [UInt8] = []
    var trailers = 0
    var ends = 0
    var errorStatus: Int? = nil
}

let fuzzLimits = HTTPLimits(maxRequestLine: 256, maxHeaderCount: 16, maxHeaderFieldSize: 256,
                            maxHeadSize: 1024, maxChunkExtension: 32, maxBodySize: 4096)
let prefix = Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

func run(_ input: [UInt8], piece: Int) -> Outcome {
    var parser = HTTPRequestParser(limits: fuzzLimits)
    var out = Outcome()
    var buffer: [UInt8] = prefix
    var fed = 0
    var steps = 0
    while fed < input.count || fed == 0 {
        let n = min(piece, input.count - fed)
        buffer += input[fed..<(fed + n)]
        fed += max(n, 1)
        while true {
            steps += 1
            precondition(steps < 10 * (input.count + prefix.count) + 100, "parser made no progress")
            let step: HTTPParseStep
            do { step = try parser.parse(buffer[...]) } catch {
                precondition([400, 413, 431, 501].contains(error.status), "unexpected status \(error.status)")
                out.errorStatus = error.status
                return out
            }
            precondition(step.consumed <= buffer.count)
            switch step.event {
            case .body(let r): out.body += buffer[r]
            case .end(let t):
                // The body is over; what follows is the next request's head (the http target's work).
                out.ends += 1
                out.trailers += t.count
                return out
            default: break
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
