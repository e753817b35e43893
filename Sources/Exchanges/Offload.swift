import CGIProtocol
import HTTPWire

/// An app's answer that hands the response to gatewayd: `X-Accel-Redirect: /uri` (nginx's
/// internal redirect, served from a route marked `internal`) or `X-Sendfile: /abs/path`
/// (lighttpd's and Apache's, a file under the app's `sendfile_roots`). The app's process is
/// free as soon as it has said so; gatewayd sends the file with sendfile, ranges and
/// conditionals as on any static route. Where the file may come from is the driver's
/// decision (it knows the routes and roots); this says only what the app asked for.
public struct Offload: Sendable, Equatable {
    public enum Target: Sendable, Equatable, CustomStringConvertible {
        /// X-Accel-Redirect: a URI (path and optional query), routed again.
        case uri(String)
        /// X-Sendfile (or X-LIGHTTPD-send-file): a file's absolute path.
        case file(String)

        public var description: String {
            switch self {
            case .uri(let u): "X-Accel-Redirect \(u)"
            case .file(let f): "X-Sendfile \(f)"
            }
        }
    }

    public let target: Target
    /// The app's fields the file's response keeps (nginx keeps the same for
    /// X-Accel-Redirect): its Content-Type, Content-Disposition, Set-Cookie, Cache-Control
    /// and Expires. Validators and length come from the file.
    public let fields: [CGIHeaderField]

    public init(target: Target, fields: [CGIHeaderField] = []) {
        self.target = target
        self.fields = fields
    }

    static let kept = ["content-type", "content-disposition", "set-cookie", "cache-control", "expires"]

    /// The offload an app's head asks for, or nil for an ordinary answer. An empty value
    /// is no request (PHP frameworks clear a header by sending it empty).
    public static func from(_ head: CGIResponseHead) -> Offload? {
        guard head.handsOver else { return nil }
        var target: Target? = nil
        for f in head.headers where !f.value.isEmpty {
            if f.name.equalsLowercaseASCII("x-accel-redirect") {
                target = .uri(f.value)
                break
            }
            if CGIResponseHeadParser.handsOver(f.name) { target = .file(f.value) }  // X-Sendfile by one of its names
        }
        guard let target else { return nil }
        let fields = head.headers.filter { f in !f.value.isEmpty && kept.contains { f.name.equalsLowercaseASCII($0) } }
        return Offload(target: target, fields: fields)
    }

    /// The app's Content-Type, which wins over the one the file's extension gives.
    public var contentType: String? { fields.first { $0.name.equalsLowercaseASCII("content-type") }?.value }
}
