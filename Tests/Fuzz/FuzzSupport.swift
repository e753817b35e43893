// Shared by every libFuzzer target (scripts/fuzz compiles it into each): h11's
// invariant that a reader gives the same outcome for input fed whole and fed one byte
// at a time.
func agreeWholeAndBytewise<T: Equatable>(_ data: UnsafePointer<UInt8>, _ size: Int, _ run: ([UInt8], Int) -> T) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = run(input, max(input.count, 1))
    let bytewise = run(input, 1)
    precondition(whole == bytewise, "whole \(whole) != byte by byte \(bytewise)")
    return 0
}
