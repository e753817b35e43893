import GatewaySystem

/// USR2: a new master from the binary on disk, beside this one (nginx's and gunicorn's
/// binary upgrade). It inherits the listening sockets by fd (GATEWAYD_LISTEN_FDS, as
/// workers inherit them), so no connection is refused while both run; it starts its own
/// workers and apps. This master's pidfile becomes PIDFILE.oldbin and the new one writes
/// PIDFILE. Then TERM (or QUIT) to this master drains it: the shared sockets are closed
/// here without the drop-all filter and without removing a unix socket's file, which
/// are the new master's now. A new master that fails to boot (or dies while this one
/// still runs) leaves this one serving, with its pidfile back.
extension Arbiter {
    func startNewBinary() {
        if let u = upgrade {
            logger.warning("USR2: a new master (pid \(u.pid)) is already running beside this one; stop one of them first")
            return
        }
        guard stopping == nil else { return }
        var fds: [(source: FileDescriptor, target: Int32)] = []
        for (i, l) in listeners.byAddress.enumerated() { fds.append((l.fd, Int32(3 + i))) }
        let environment = Processes.environment().filter { !$0.hasPrefix(Listeners.inheritVariable + "=") }
            + [Listeners.inheritVariable + "=" + fds.map { String($0.target) }.joined(separator: ",")]
        let arguments = [executable] + CommandLine.arguments.dropFirst()
        let pidfile = config.server.pidfile
        if let p = pidfile, !Host.renameFile(p, p + ".oldbin") { logger.warning("USR2: cannot rename \(p) to \(p).oldbin") }
        do {
            let pid = try Processes.spawn(path: executable, arguments: arguments, environment: environment, fds: fds)
            upgrade = (pid, Host.monotonicSeconds())
            listeners.handedOver = true
            logger.info("USR2: started a new master (pid \(pid)) from \(executable), sharing the listeners; TERM to this master (pid \(Processes.currentPID)) finishes the upgrade, TERM to the new one rolls it back")
        } catch {
            logger.error("USR2: cannot start \(executable): \(error); still serving with this master")
            if let p = pidfile { _ = Host.renameFile(p + ".oldbin", p) }
        }
    }

    /// The new master exited while this one runs: the upgrade failed (or was rolled
    /// back). This master goes on serving and owns its sockets and pidfile again.
    func newMasterExited(_ status: Processes.ExitStatus) {
        guard let u = upgrade else { return }
        upgrade = nil
        listeners.handedOver = false
        let after = Int(Host.monotonicSeconds() - u.since)
        logger.error("binary upgrade: the new master (pid \(u.pid)) exited (\(status)) after \(after) s; this master (pid \(Processes.currentPID)) keeps serving")
        if let p = config.server.pidfile {
            Host.removeFile(p + ".oldbin")
            writePidfile()
        }
    }
}
