/// Header fields in arrival order, stored as one byte buffer plus offsets.
///
/// A parsed head costs two allocations however many fields it has: the copied bytes
/// and the offset table. A `String` is made only when a caller asks for one.
public struct HTTPHeaders: Sendable, Equatable {
    @usableFromInline struct Field: Sendable, Equatable {
        @usableFromInline var nameStart: Int32, nameEnd: Int32, valueStart: Int32, valueEnd: Int32
    }

    @usableFromInline var storage: [UInt8]
    @usableFromInline var fields: [Field]

    public init() {
        storage = []
        fields = []
    }

    /// Builds headers from name/value pairs (response heads, tests). Values are taken as given:
    /// callers that take them from untrusted input validate them first.
    public init(_ pairs: [(String, String)]) {
        self.init()
        for (n, v) in pairs { append(name: n, value: v) }
    }

    init(storage: [UInt8], fields: [Field]) {
        self.storage = storage
        self.fields = fields
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    public mutating func append(name: String, value: String) {
        let ns = Int32(storage.count)
        storage.appendUTF8(name)
        let ne = Int32(storage.count)
        storage.appendUTF8(value)
        fields.append(Field(nameStart: ns, nameEnd: ne, valueStart: ne, valueEnd: Int32(storage.count)))
    }

    public func name(at i: Int) -> String { string(fields[i].nameStart, fields[i].nameEnd) }
    public func value(at i: Int) -> String { string(fields[i].valueStart, fields[i].valueEnd) }

    /// Raw bytes of the i-th name and value, without copying into a String.
    public func withField<R, E: Error>(at i: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let f = fields[i]
        let result: Result<R, E> = storage.withUnsafeBytes { all in
            do throws(E) {
                return .success(try body(UnsafeRawBufferPointer(rebasing: all[Int(f.nameStart)..<Int(f.nameEnd)]),
                                         UnsafeRawBufferPointer(rebasing: all[Int(f.valueStart)..<Int(f.valueEnd)])))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The raw bytes of the i-th name. (Inlinable, so it is specialized where it is used:
    /// the generic `withField` called across modules cost more than the work it served.)
    @inlinable
    public func withName<R>(at i: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let f = fields[i]
        return storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[Int(f.nameStart)..<Int(f.nameEnd)])) }
    }

    public subscript(i: Int) -> (name: String, value: String) { (name(at: i), value(at: i)) }

    /// Whether the i-th field's name equals `name`, ignoring ASCII case.
    public func nameMatches(at i: Int, _ name: String) -> Bool {
        let f = fields[i]
        let len = Int(f.nameEnd - f.nameStart)
        guard name.utf8.count == len else { return false }  // most names differ in length: no copy, no loop
        var n = name
        return n.withUTF8 { want in
            guard want.count == len else { return false }
            for j in 0..<len where asciiLowercase(storage[Int(f.nameStart) + j]) != asciiLowercase(want[j]) { return false }
            return true
        }
    }

    /// The first value of the field `name` (case-insensitive), if present.
    public func first(_ name: String) -> String? {
        for i in 0..<fields.count where nameMatches(at: i, name) { return value(at: i) }
        return nil
    }

    /// Every value of the field `name`, in order.
    public func values(_ name: String) -> [String] {
        (0..<fields.count).filter { nameMatches(at: $0, name) }.map { value(at: $0) }
    }

    public var pairs: [(name: String, value: String)] { (0..<fields.count).map { self[$0] } }

    private func string(_ a: Int32, _ b: Int32) -> String {
        String(decoding: storage[Int(a)..<Int(b)], as: UTF8.self)
    }
}

extension HTTPHeaders: Sequence {
    public func makeIterator() -> AnyIterator<(name: String, value: String)> {
        var i = 0
        return AnyIterator {
            guard i < self.fields.count else { return nil }
            defer { i += 1 }
            return self[i]
        }
    }
}
