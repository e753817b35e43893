/// An app's or a CGI program's stderr as error-log lines: split at newlines (the log
/// handler escapes any other control byte), and capped per request (16 KiB, then a count
/// of what was left out), so an app that floods stderr costs a few lines, not the disk.
/// The FastCGI relay (STDERR records) and the CGI runner (the stderr pipe) both use it.
public struct StderrLines: Sendable {
    /// Error-log bytes one request may write.
    public static let limit = 16384
    /// A longer line is cut here (the rest of it is counted as dropped).
    public static let maxLine = 4096

    public let label: String
    private var line: [UInt8] = []
    public private(set) var logged = 0
    public private(set) var dropped = 0

    public init(label: String) { self.label = label }

    public mutating func append(_ bytes: some Collection<UInt8>, notes: inout [ExchangeNote]) {
        for b in bytes {
            if b == 0x0A || b == 0x0D {
                flushLine(&notes)
            } else if line.count < Self.maxLine {
                line.append(b)
            } else {
                dropped += 1
            }
        }
    }

    /// The end of the stream: the last partial line, and what was not logged.
    public mutating func finish(notes: inout [ExchangeNote]) {
        flushLine(&notes)
        if dropped > 0 {
            notes.append(ExchangeNote(.warning, "\(label): \(dropped) more bytes of stderr not logged"))
            dropped = 0
        }
    }

    private mutating func flushLine(_ notes: inout [ExchangeNote]) {
        defer { line.removeAll(keepingCapacity: true) }
        guard !line.isEmpty else { return }
        guard logged < Self.limit else {
            dropped += line.count + 1
            return
        }
        logged += line.count + 1
        notes.append(ExchangeNote(.warning, "\(label) stderr: \(String(decoding: line, as: UTF8.self))"))
    }
}
