/// Size limits the parser enforces. Every one has a safe default; the configuration
/// (`[limits]` in gateway.toml) overrides them.
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line, CRLF excluded (414 past it). nginx: 8 KiB buffers.
    public var maxRequestLine: Int
    /// Most header fields in one head or trailer section (431 past it).
    public var maxHeaderCount: Int
    /// Longest single field line, name and value (431 past it).
    public var maxHeaderFieldSize: Int
    /// Largest head: request line, fields and the blank line (431 past it).
    public var maxHeadSize: Int
    /// Longest chunk extension on one chunk-size line (400 past it).
    public var maxChunkExtension: Int
    /// Largest request body, declared or decoded (413 past it).
    public var maxBodySize: UInt64

    public init(maxRequestLine: Int = 8192, maxHeaderCount: Int = 100, maxHeaderFieldSize: Int = 8192,
                maxHeadSize: Int = 65536, maxChunkExtension: Int = 1024, maxBodySize: UInt64 = 100 << 20) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderCount = maxHeaderCount
        self.maxHeaderFieldSize = maxHeaderFieldSize
        self.maxHeadSize = maxHeadSize
        self.maxChunkExtension = maxChunkExtension
        self.maxBodySize = maxBodySize
    }
}
