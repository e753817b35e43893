import Glibc
import CGatewayShims

/// A file descriptor. A plain value: closing is explicit, as in NIO's System.swift.
public struct FileDescriptor: Sendable, Hashable {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public func close() throws(SystemError) {
        // close must not be retried on EINTR on Linux: the fd is already gone.
        if Glibc.close(rawValue) == -1 && errno != EINTR { throw SystemError(errno: errno, "close") }
    }

    /// Reads up to `buffer.count` bytes; 0 means end of file. Nil when a non-blocking fd has nothing.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int? {
        do {
            return try syscall("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Writes some of `bytes`; nil when a non-blocking fd cannot take any now.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int? {
        do {
            return try syscall("write") { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Writes all of `bytes`, blocking as needed (blocking fds only).
    public func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = try syscall("write") { bytes.withUnsafeBytes { Glibc.write(rawValue, $0.baseAddress! + offset, $0.count - offset) } }
            offset += n
        }
    }

    public func setNonBlocking(_ on: Bool) throws(SystemError) {
        let flags = try syscall("fcntl") { fcntl(rawValue, F_GETFL) }
        let new = on ? flags | gw_O_NONBLOCK : flags & ~gw_O_NONBLOCK
        _ = try syscall("fcntl") { fcntl(rawValue, F_SETFL, new) }
    }

    /// Lets the fd survive exec (listening sockets handed to workers) or not.
    public func setInheritable(_ on: Bool) throws(SystemError) {
        let flags = try syscall("fcntl") { fcntl(rawValue, F_GETFD) }
        let new = on ? flags & ~FD_CLOEXEC : flags | FD_CLOEXEC
        _ = try syscall("fcntl") { fcntl(rawValue, F_SETFD, new) }
    }

    /// Copies up to `count` bytes from the file `source` at `offset` to this fd (sendfile(2)).
    public func sendfile(from source: FileDescriptor, offset: inout Int, count: Int) throws(SystemError) -> Int? {
        var off = off_t(offset)
        do {
            let n = try syscall("sendfile") { gw_sendfile(rawValue, source.rawValue, &off, count) }
            offset = Int(off)
            return n
        } catch where error.errno == EAGAIN {
            return nil
        }
    }
}

public enum Pipe {
    /// A close-on-exec pipe, optionally non-blocking at both ends: (read end, write end).
    public static func make(nonBlocking: Bool = false) throws(SystemError) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try syscall("pipe2") { gw_pipe2(&fds, gw_O_CLOEXEC | (nonBlocking ? gw_O_NONBLOCK : 0)) }
        return (FileDescriptor(fds[0]), FileDescriptor(fds[1]))
    }
}

extension FileDescriptor {
    /// Reads into `bytes[offset...]`; 0 at end of file, nil when a non-blocking fd has nothing.
    public func read(into bytes: inout [UInt8], from offset: Int) throws(SystemError) -> Int? {
        while true {
            let r = bytes.withUnsafeMutableBytes { b in Glibc.read(rawValue, b.baseAddress! + offset, b.count - offset) }
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, "read")
        }
    }

    /// Writes some of `bytes[offset...]`; nil when a non-blocking fd cannot take any now.
    public func write(_ bytes: [UInt8], from offset: Int) throws(SystemError) -> Int? {
        while true {
            let r = bytes.withUnsafeBytes { b in Glibc.write(rawValue, b.baseAddress! + offset, b.count - offset) }
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, "write")
        }
    }
}

extension FileDescriptor {
    /// As `write(_:from:)`, on a socket, telling the kernel more follows at once
    /// (MSG_MORE): a response head sent this way goes out in one segment with the first
    /// bytes of the file that sendfile sends next, as TCP_CORK would, without two
    /// setsockopt calls per response.
    public func sendMore(_ bytes: [UInt8], from offset: Int) throws(SystemError) -> Int? {
        while true {
            let r = bytes.withUnsafeBytes { b in Glibc.send(rawValue, b.baseAddress! + offset, b.count - offset, Int32(MSG_MORE)) }
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(errno: e, "send")
        }
    }

    /// Reads into `bytes` from file offset `offset` (pread); 0 at end of file.
    public func pread(into bytes: inout [UInt8], at offset: Int) throws(SystemError) -> Int {
        try syscall("pread") { bytes.withUnsafeMutableBytes { Glibc.pread(rawValue, $0.baseAddress, $0.count, off_t(offset)) } }
    }
}

extension Array where Element == UInt8 {
    /// A read buffer of `count` bytes, not zero-filled: reads overwrite what they use,
    /// and zeroing 64 KiB per request showed in profiles.
    public static func readBuffer(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

}
