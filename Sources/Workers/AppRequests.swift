import GatewaySystem
import CGIProtocol
import GatewayConfig
import HTTPWire
import Exchanges

/// What both drivers of a FastCGI exchange need from the worker: the app's settings for
/// the engine, made once at boot, and the request's CGI variables.
extension WorkerContext {
    /// AppExchange.App of each app, by index (as the slot table numbers them).
    static func appExchanges(_ config: Configuration) -> [AppExchange.App] {
        config.apps.map { app in
            AppExchange.App(name: app.name, slotCount: app.slotCount, queueTimeout: app.queueTimeout, keepConnection: app.keepConnection,
                            maxResponseHead: config.limits.maxResponseHead, connectTimeout: config.timeouts.backendConnect,
                            readTimeout: config.timeouts.backendRead, requestTimeout: app.requestTimeout, slowRequest: app.slowRequest,
                            servers: app.servers.count)
        }
    }

    /// The CGI variables an app gets for `head` (served at `target`: its own, or a local
    /// redirect's, which the app sees as a GET without a body).
    func fastCGIParams(head: HTTPRequestHead, target: String, match: RouteMatch, appIndex: Int,
                       remote: (address: String, port: Int), local: (address: String, port: Int),
                       contentLength: UInt64?, secure: Bool = false, serverProtocol: String? = nil) -> [(name: String, value: String)] {
        let host = head.host.map(CGIEnvironment.hostWithoutPort) ?? ""
        let client = clientPeer(remote, head: head, secure: secure)
        let root = config.apps[appIndex].root
        let filename = match.scriptFilename ?? root.map { CGIEnvironment.joinPath($0, match.scriptName) }
        var context = CGIRequestContext(
            scriptName: match.scriptName, pathInfo: match.pathInfo, documentRoot: root, scriptFilename: filename,
            contentLength: contentLength, remoteAddress: client.address.isEmpty ? "127.0.0.1" : client.address,
            remotePort: client.port, serverName: config.server.serverName ?? (host.isEmpty ? "localhost" : host),
            serverPort: local.port, serverAddress: local.address.isEmpty ? nil : local.address,
            https: client.https, serverSoftware: WorkerContext.software, extra: extraEnvironments[match.index])
        context.serverProtocol = serverProtocol
        return CGIEnvironment.build(head: CGILink.requestHead(head, target: target), context: context)
    }

    /// A monotonic instant (a request's start) as epoch microseconds, for X-Request-Start.
    func epochMicros(_ monotonic: Double) -> Int64 {
        Host.epochMicroseconds() - Int64(((Host.monotonicSeconds() - monotonic) * 1_000_000).rounded())
    }

    /// The slow_request warning, worded once for both drivers.
    func slowRequestMessage(_ app: String, _ method: String, _ target: String, slot: Int, seconds: Double) -> String {
        "app \(app): slow request: \(method) \(target) held slot \(slot) for \(Int(seconds * 1000)) ms"
    }
}
