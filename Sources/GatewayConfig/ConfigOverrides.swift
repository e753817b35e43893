/// gunicorn-style command-line flags; each one replaces the file's value.
public struct ConfigOverrides: Sendable, Equatable {
    public var bind: [String] = []
    public var workers: Int?
    public var workerClass: String?
    public var threads: Int?
    public var timeout: Double?
    public init() {}

    public var isEmpty: Bool { self == ConfigOverrides() }
}

extension Configuration {
    /// This configuration with the flags applied; bad flag values are errors like the file's.
    public func applying(_ o: ConfigOverrides, baseDirectory: String) throws(ConfigError) -> Configuration {
        var c = self
        var issues: [ConfigIssue] = []
        func fail(_ flag: String, _ message: String) {
            issues.append(ConfigIssue(file: "command line", line: nil, key: flag, message: message))
        }
        if !o.bind.isEmpty {
            c.server.bind = []
            for b in o.bind {
                switch ConfigValues.parseBind(b) {
                case .success(.unix(let path)):
                    c.server.bind.append(.unix(path: path.hasPrefix("/") ? path : baseDirectory + "/" + path))
                case .success(let a): c.server.bind.append(a)
                case .failure(let e): fail("--bind", e.message)
                }
            }
        }
        if let w = o.workers {
            if (1...1024).contains(w) { c.server.workers = w } else { fail("--workers", "expected 1-1024, got \(w)") }
        }
        if let k = o.workerClass {
            if let wc = WorkerClass(rawValue: k) { c.server.workerClass = wc }
            else { fail("--worker-class", "expected one of \(WorkerClass.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(k)\"") }
        }
        if let t = o.threads {
            if (1...4096).contains(t) { c.server.threads = t } else { fail("--threads", "expected 1-4096, got \(t)") }
        }
        if let t = o.timeout {
            if t > 0 && t.isFinite { c.server.timeout = t } else { fail("--timeout", "expected seconds > 0, got \(t)") }
        }
        guard issues.isEmpty else { throw ConfigError(issues: issues) }
        return c
    }
}
