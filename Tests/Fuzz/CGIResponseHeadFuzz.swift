// libFuzzer target for CGIResponseHeadParser (built by scripts/fuzz): what a CGI program
// or a FastCGI app prints as its head. Invariant: parse or throw CGIResponseError; never
// crash or hang; a parsed head has no CR, LF or NUL in any field; whole and
// byte-by-byte input agree.
import CGIProtocol

func run(_ input: [UInt8], piece: Int) -> String {
    var parser = CGIResponseHeadParser(maxHeadSize: 512)
    var i = 0
    while i < input.count {
        i = min(input.count, i + piece)
        do {
            let (consumed, head) = try parser.parse(input[0..<i])
            if let h = head {
                precondition(consumed <= i)
                for f in h.headers {
                    precondition(!f.name.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }, "control byte in a name")
                    precondition(!f.value.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }, "control byte in a value")
                }
                return "\(h.status) \(h.reason ?? "-") \(h.kind) \(h.headers.map { $0.name + ":" + $0.value }) \(consumed)"
            }
        } catch {
            return "error"
        }
    }
    return "incomplete"
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    agreeWholeAndBytewise(data, size) { input, piece in run(input, piece: piece) }
}
