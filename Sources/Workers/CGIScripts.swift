import CGIProtocol
import GatewayConfig
import GatewaySystem

/// A CGI program found for a request: what to execute and the variables it implies.
struct CGIScript: Sendable {
    /// The file executed: the script itself, or its interpreter.
    var program: String
    var arguments: [String]
    /// The script file (SCRIPT_FILENAME); its directory is the working directory.
    var scriptFilename: String
    var directory: String
    var scriptName: String
    var pathInfo: String
    /// DOCUMENT_ROOT: the route's directory (or the program's, for a one-program route).
    var documentRoot: String
    /// "nph-" programs write the whole HTTP response themselves.
    var nph: Bool
    var route: RouteConfig
}

/// Finds the CGI program a request path names, refusing what must not run: anything
/// whose raw path hides dots, slashes or escapes in percent-encoding, hidden files and
/// directories, symbolic links that lead out of the route's directory (unless the route
/// allows them), files neither executable nor mapped to an interpreter, and directories.
struct CGIScripts: Sendable {
    /// Why a path runs nothing, and the status that says so.
    struct Refusal: Error, Equatable {
        let status: Int
        let why: String
        init(_ status: Int, _ why: String) { self.status = status; self.why = why }
    }

    /// Interpreter by extension, already found in PATH (nil: configured but not found).
    let interpreters: [String: String?]
    /// Each cgi route's directory, with every link resolved, for the symlink check.
    let canonicalRoots: [String: String]

    init(config: Configuration, searchPath: String) {
        var found: [String: String?] = [:]
        for (ext, name) in config.cgi.interpreters { found[ext] = FileSystem.findExecutable(name, searchPath: searchPath) }
        interpreters = found
        var roots: [String: String] = [:]
        for r in config.routes {
            if case .cgi(let dir) = r.target { roots[dir] = FileSystem.realPath(dir) ?? dir }
        }
        canonicalRoots = roots
    }

    /// Encodings no honest CGI URL needs and that smuggle "..", "/" or a second decode.
    static func hasSmuggledBytes(_ rawPath: Substring) -> Bool {
        let u = Array(rawPath.utf8)
        var i = 0
        while i + 2 < u.count {
            if u[i] == UInt8(ascii: "%") {
                let pair = (u[i + 1] | 0x20, u[i + 2] | 0x20)
                switch pair {
                case (UInt8(ascii: "2"), UInt8(ascii: "e")), (UInt8(ascii: "2"), UInt8(ascii: "f")),
                     (UInt8(ascii: "5"), UInt8(ascii: "c")), (UInt8(ascii: "2"), UInt8(ascii: "5")),
                     (UInt8(ascii: "0"), UInt8(ascii: "0")):
                    return true
                default: break
                }
            }
            i += 1
        }
        return false
    }

    /// Maps `path` (decoded and normalised) under `route` (whose target is `base`).
    func resolve(path: String, rawPath: Substring, route: RouteConfig, base: String, mount: String) throws(Refusal) -> CGIScript {
        guard !Self.hasSmuggledBytes(rawPath) else { throw Refusal(400, "encoded dot, slash, backslash, percent or NUL in a CGI path") }
        guard let baseInfo = FileSystem.info(base, followLinks: true) else { throw Refusal(404, "\(base) does not exist") }
        if baseInfo.kind == .regular {
            // One program for the whole prefix: the rest of the path is PATH_INFO.
            guard let split = CGIPath.splitAtMount(path, prefix: mount) else { throw Refusal(404, "not under \(mount)") }
            let dir = Self.directory(of: base)
            return try script(file: base, scriptName: split.scriptName, pathInfo: split.pathInfo, documentRoot: dir, route: route)
        }
        guard let split = CGIPath.splitAtMount(path, prefix: mount) else { throw Refusal(404, "not under \(mount)") }
        let root = canonicalRoots[base] ?? base
        var scriptName = split.scriptName
        var file = base
        var rest = Substring(split.pathInfo)
        while rest.hasPrefix("/") {
            let end = rest.dropFirst().firstIndex(of: "/") ?? rest.endIndex
            let segment = rest[rest.index(after: rest.startIndex)..<end]
            guard !segment.isEmpty else { break }  // a trailing slash
            guard !segment.hasPrefix(".") else { throw Refusal(404, "hidden file or directory \"\(segment)\"") }
            scriptName += "/" + segment
            file += "/" + segment
            rest = rest[end...]
            guard var info = FileSystem.info(file) else { throw Refusal(404, "\(file) does not exist") }
            if info.kind == .symlink {
                if !route.allowSymlinks {
                    guard let target = FileSystem.realPath(file), target.hasPrefix(root + "/") else {
                        throw Refusal(403, "\(file) is a symbolic link out of \(base) (allow_symlinks is off)")
                    }
                }
                guard let followed = FileSystem.info(file, followLinks: true) else { throw Refusal(404, "\(file) is a dangling link") }
                info = followed
            }
            switch info.kind {
            case .directory:
                continue
            case .regular:
                return try script(file: file, scriptName: scriptName, pathInfo: String(rest), documentRoot: base, route: route)
            default:
                throw Refusal(403, "\(file) is not a regular file")
            }
        }
        throw Refusal(404, "no CGI program in \(path)")
    }

    func script(file: String, scriptName: String, pathInfo: String, documentRoot: String, route: RouteConfig) throws(Refusal) -> CGIScript {
        let name = file.split(separator: "/").last.map(String.init) ?? file
        var program = file
        var arguments = [file]
        if let dot = name.lastIndex(of: "."), let entry = interpreters[String(name[dot...])] {
            guard let interpreter = entry else { throw Refusal(502, "the interpreter for \(name[dot...]) files was not found in PATH") }
            program = interpreter
            arguments = [interpreter, file]
        } else if !FileSystem.isExecutable(file) {
            throw Refusal(403, "\(file) is not executable")
        }
        // No command-line words from the query (RFC 3875 §4.4 allows them; php-cgi's
        // CVE-2012-1823 is what they lead to).
        return CGIScript(program: program, arguments: arguments, scriptFilename: file, directory: Self.directory(of: file),
                         scriptName: scriptName, pathInfo: pathInfo, documentRoot: documentRoot,
                         nph: name.hasPrefix("nph-"), route: route)
    }

    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return slash == file.startIndex ? "/" : String(file[..<slash])
    }
}
