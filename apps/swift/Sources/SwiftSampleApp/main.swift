// The Swift sample app: libfcgi through a system-library target (apps/swift/CFastCGI),
// with the endpoints every sample app shares (apps/README.md). FastCGI on fd 0 when a
// process manager starts it; `swift-app HOST:PORT` or `swift-app /path.sock` to listen itself.
import CFastCGI
import Glibc

struct Request {
    var raw: FCGX_Request

    func param(_ name: String) -> String? {
        guard let v = FCGX_GetParam(name, raw.envp) else { return nil }
        return String(cString: v)
    }

    var environment: [(String, String)] {
        var out: [(String, String)] = []
        var p = raw.envp
        while let entry = p?.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out.append((String(s[..<eq]), String(s[s.index(after: eq)...]))) }
            p = p! + 1
        }
        return out
    }

    func query(_ name: String) -> String? {
        for pair in (param("QUERY_STRING") ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == name { return String(kv[1]) }
        }
        return nil
    }

    func write(_ s: String) { write(Array(s.utf8)) }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { _ = FCGX_PutStr($0.baseAddress, Int32(b.count), raw.out) }
        }
    }

    func readBody(_ body: ([UInt8]) -> Void) {
        var buf = [CChar](repeating: 0, count: 65536)
        while true {
            let n = FCGX_GetStr(&buf, Int32(buf.count), raw.in)
            if n <= 0 { return }
            body(buf[0..<Int(n)].map { UInt8(bitPattern: $0) })
        }
    }
}

func json(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if u.value < 0x20 {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

func handle(_ r: Request) {
    var path = r.param("PATH_INFO") ?? ""
    if path.isEmpty || path == "/" { path = r.param("SCRIPT_NAME") ?? "" }
    let endpoint = path.split(separator: "/").last.map(String.init) ?? ""
    switch endpoint {
    case "hello", "":
        r.write("Content-Type: text/plain\r\n\r\nHello from Swift (libfcgi)\n")
    case "env":
        let body = r.environment.map { "\(json($0.0)):\(json($0.1))" }.joined(separator: ",")
        r.write("Content-Type: application/json\r\n\r\n{\(body)}\n")
    case "echo":
        var sha = SHA256()
        var total = 0
        r.readBody { sha.update($0); total += $0.count }
        r.write("Content-Type: application/json\r\n\r\n{\"length\":\(total),\"sha256\":\"\(sha.finalHex())\"}\n")
    case "sleep":
        let ms = Int(r.query("ms") ?? "100") ?? 100
        usleep(useconds_t(ms * 1000))
        r.write("Content-Type: text/plain\r\n\r\nslept \(ms) ms\n")
    case "stream":
        let n = Int(r.query("bytes") ?? "1024") ?? 1024
        r.write("Content-Type: application/octet-stream\r\n\r\n")
        let block = (0..<(65000 + 26)).map { UInt8(97 + $0 % 26) }
        var sent = 0
        while sent < n {
            let size = min(65000, n - sent)
            r.write(Array(block[(sent % 26)..<(sent % 26 + size)]))
            sent += size
        }
    case "status":
        let code = Int(r.query("code") ?? "200") ?? 200
        var head = "Status: \(code)\r\nContent-Type: text/plain\r\n"
        if let n = r.query("name"), let v = r.query("value") { head += "\(n): \(v)\r\n" }
        r.write(head + "\r\nstatus \(code)\n")
    case "stderr":
        _ = FCGX_PutS("a line on stderr from the Swift app\n", r.raw.err)
        r.write("Content-Type: text/plain\r\n\r\nwrote to stderr\n")
    default:
        r.write("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno endpoint \(endpoint)\n")
    }
}

guard FCGX_Init() == 0 else { exit(1) }
var socket: Int32 = 0
if CommandLine.arguments.count > 1 {
    socket = FCGX_OpenSocket(CommandLine.arguments[1], 128)
    guard socket >= 0 else { print("swift-app: cannot listen on \(CommandLine.arguments[1])"); exit(1) }
}
var request = FCGX_Request()
FCGX_InitRequest(&request, socket, 0)
while FCGX_Accept_r(&request) >= 0 {
    handle(Request(raw: request))
    FCGX_Finish_r(&request)
}
