import CGatewayShims

/// Atomic 64-bit counters in shared memory, for metrics every worker adds to.
public enum SharedCounter {
    @inline(__always)
    public static func add(_ p: UnsafeMutablePointer<UInt64>, _ v: UInt64) { _ = gw_atomic_add_u64(p, v) }

    @inline(__always)
    public static func load(_ p: UnsafeMutablePointer<UInt64>) -> UInt64 { gw_atomic_load_u64(p) }

    /// Sets *p from `expected` to `desired`; false if it held something else.
    public static func compareExchange(_ p: UnsafeMutablePointer<UInt64>, _ expected: UInt64, _ desired: UInt64) -> Bool {
        gw_atomic_cas_u64(p, expected, desired) != 0
    }
}
