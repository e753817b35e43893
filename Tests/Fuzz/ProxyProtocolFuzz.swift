// libFuzzer target for the PROXY protocol reader (built by scripts/fuzz). Invariant:
// a header, need-more, or a thrown 400; never a crash; every prefix shorter than a
// parsed header needs more (never a different answer); a source address is a valid
// IPv4 or IPv6 address and its port is in range.
import HTTPWire

func outcome(_ bytes: ArraySlice<UInt8>) -> String {
    do {
        switch try ProxyProtocol.parse(bytes) {
        case .needMore: return "more"
        case .header(let source, let consumed):
            precondition(consumed <= bytes.count)
            if let s = source {
                precondition(IPAddress.parse(Substring(s.address)) != nil, "not an address: \(s.address)")
                precondition((0...65535).contains(s.port))
            }
            return "header \(source.map { "\($0.address) \($0.port)" } ?? "-") \(consumed)"
        }
    } catch {
        precondition(error.status == 400)
        return "error"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = outcome(input[...])
    if whole.hasPrefix("header"), let consumed = Int(whole.split(separator: " ").last!) {
        for n in 0..<consumed { precondition(outcome(input[0..<n]) == "more", "prefix \(n) of a header: \(outcome(input[0..<n]))") }
        precondition(outcome(input[0..<consumed]) == whole, "the header alone reads differently")
    }
    return 0
}
