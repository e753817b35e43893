import Glibc

/// A failed system call: errno and the call's name, e.g. "bind: Address already in use".
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let function: String

    public init(errno: Int32, _ function: String) {
        self.errno = errno
        self.function = function
    }

    public var description: String { "\(function): \(String(cString: strerror(errno)))" }
}

/// Runs `call` until it does not fail with EINTR; a -1 result becomes a SystemError.
/// The single place where interrupted calls are retried.
@inline(__always)
func syscall<T: FixedWidthInteger>(_ function: String, _ call: () -> T) throws(SystemError) -> T {
    while true {
        let r = call()
        if r != -1 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(errno: e, function)
    }
}

/// errno values callers compare against without importing Glibc.
public let EPIPE_ = EPIPE
public let ECONNRESET_ = ECONNRESET
public let EAGAIN_ = EAGAIN
public let EACCES_ = EACCES
public let ELOOP_ = ELOOP
