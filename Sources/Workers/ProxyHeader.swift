import HTTPWire

/// A client connection of any worker class whose listener may speak the PROXY protocol.
protocol ReadsProxyHeader: AnyObject {
    var unconsumed: ArraySlice<UInt8> { get }
    var remote: (address: String, port: Int) { get set }
    var expectsProxyHeader: Bool { get set }
    func consume(_ n: Int)
}

extension ReadsProxyHeader {
    /// Takes the PROXY protocol header off the front of the input, if one is expected:
    /// its source becomes the connection's peer. False while more bytes are needed;
    /// throws (400) on anything but a valid header.
    func takeProxyHeader() throws(HTTPParseError) -> Bool {
        guard expectsProxyHeader else { return true }
        guard case .header(let source, let n) = try ProxyProtocol.parse(unconsumed) else { return false }
        consume(n)
        if let source { remote = (source.address, source.port) }
        expectsProxyHeader = false
        return true
    }
}
