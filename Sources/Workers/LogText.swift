/// Text from clients and apps made safe for a log line.
enum LogText {
    /// Control bytes (and DEL) as \xNN, so a decoded path or an app's stderr cannot
    /// forge log lines, move the cursor of whoever tails the log, or hide text.
    static func escaped<S: StringProtocol>(_ s: S) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return String(s) }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            if b < 0x20 || b == 0x7F {
                out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
