import GatewayConfig
import GatewaySystem

/// The master's control socket: commands without signals, from `gatewayd reload-app`.
/// A unix socket (mode 0600: whoever may signal the master) at server.control_socket,
/// PIDFILE.ctl by default. One line in, one line out: `reload-app NAME` answers
/// `ok: ...` or `error: ...`. Served from the master's loop, a line at a time; a client
/// that does not send its line within a second is dropped.
extension Arbiter {
    func openControlSocket() {
        guard let path = config.server.controlPath else { return }
        do {
            let raw = try Socket.listenUnix(path: path, backlog: 8, mode: 0o600)
            control = try raw.duplicate(atLeast: 64)
            try? raw.close()
            try control?.setNonBlocking(true)
        } catch {
            logger.error("cannot open the control socket \(path): \(error); `gatewayd reload-app` will not reach this master")
        }
    }

    func closeControlSocket() {
        guard let c = control else { return }
        try? c.close()
        control = nil
        // After a binary upgrade the path is the new master's socket.
        if upgrade == nil, let path = config.server.controlPath { Host.removeFile(path) }
    }

    /// Answers every client waiting on the control socket.
    func serveControl() {
        guard let c = control else { return }
        while let client = try? Socket.accept(c, nonBlocking: false) {
            defer { try? client.close() }
            var line: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 512)
            while !line.contains(10) && line.count < 512, (try? client.waitReadable(timeoutMilliseconds: 1000)) == true,
                  let n = try? client.read(into: &buffer, from: 0), n > 0 {
                line += buffer[0..<n]
            }
            let text = String(decoding: line.prefix { $0 != 10 && $0 != 13 }, as: UTF8.self)
            let reply = controlCommand(text)
            try? client.writeAll(Array((reply + "\n").utf8))
        }
    }

    func controlCommand(_ line: String) -> String {
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "reload-app" where words.count == 2:
            let name = words[1]
            guard let i = config.apps.firstIndex(where: { $0.name == name }) else {
                return "error: no app named \(name) (apps: \(config.apps.map(\.name).joined(separator: ", ")))"
            }
            guard case .hosted = config.apps[i].kind else {
                return "error: app \(name) is a connect app; gatewayd does not run its processes"
            }
            guard stopping == nil else { return "error: the master is stopping" }
            apps.rollingRestart(i, why: "reload-app")
            return "ok: replacing the \(config.apps[i].slotCount) processes of app \(name) one at a time; the error log says when every process is replaced"
        default:
            return "error: unknown command \"\(line)\" (known: reload-app NAME)"
        }
    }
}
