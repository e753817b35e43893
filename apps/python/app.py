"""The Python sample app: WSGI served over FastCGI by flup, one request at a time.

Started by a process manager (gatewayd, spawn-fcgi) it serves FastCGI on fd 0; given
`--bind HOST:PORT` or `--bind /path.sock` it listens there itself; `--threads N` serves
N requests at once (flup's threaded server). The endpoints are the same as every
sample app's (apps/README.md).
"""
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qs

from flup.server import fcgi, fcgi_single


def endpoint(environ):
    path = environ.get("PATH_INFO") or ""
    if path in ("", "/"):
        path = environ.get("SCRIPT_NAME") or ""
    return path.rstrip("/").rsplit("/", 1)[-1]


def query(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def stream(n):
    block = bytes(ord("a") + i % 26 for i in range(65000 + 26))
    sent = 0
    while sent < n:
        size = min(65000, n - sent)
        start = sent % 26
        yield block[start:start + size]
        sent += size


def app(environ, start_response):
    ep = endpoint(environ)
    if ep in ("hello", ""):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello from Python (flup)\n"]
    if ep == "whoami":
        # Which process answered: APP_LABEL (from its environment) and its pid, so a
        # test of several servers can count where requests went.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%s %d\n" % (os.environ.get("APP_LABEL", "python"), os.getpid())).encode()]
    if ep == "env":
        env = {k: v for k, v in environ.items() if isinstance(v, str)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(env).encode() + b"\n"]
    if ep == "echo":
        digest, total = hashlib.sha256(), 0
        body = environ["wsgi.input"]
        while True:
            chunk = body.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"length": total, "sha256": digest.hexdigest()}).encode() + b"\n"]
    if ep == "sleep":
        ms = int(query(environ, "ms", "100"))
        time.sleep(ms / 1000)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"slept {ms} ms\n".encode()]
    if ep == "stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream(int(query(environ, "bytes", "1024")))
    if ep == "status":
        code = int(query(environ, "code", "200"))
        headers = [("Content-Type", "text/plain")]
        name, value = query(environ, "name", None), query(environ, "value", None)
        if name and value:
            headers.append((name, value))
        start_response(f"{code} Status", headers)
        return [f"status {code}\n".encode()]
    if ep == "health":
        # 503 while the file named by APP_SICK_FILE exists (a maintenance switch).
        sick = os.environ.get("APP_SICK_FILE")
        code = "503 Service Unavailable" if sick and os.path.exists(sick) else "200 OK"
        start_response(code, [("Content-Type", "text/plain")])
        return [code.encode() + b"\n"]
    if ep == "stderr":
        environ["wsgi.errors"].write("a line on stderr from the Python app\n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wrote to stderr\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [f"no endpoint {ep}\n".encode()]


def main(argv):
    bind, threads = None, 0
    args = argv[1:]
    while len(args) >= 2:
        if args[0] == "--bind":
            target = args[1]
            if target.startswith("/"):
                bind = target
            else:
                host, port = target.rsplit(":", 1)
                bind = (host, int(port))
        elif args[0] == "--threads":
            threads = int(args[1])
        args = args[2:]
    if threads > 0:
        # Every thread from the start: flup closes a connection that finds no idle thread.
        server = fcgi.WSGIServer(app, bindAddress=bind, minSpare=threads, maxSpare=threads, maxThreads=threads)
    else:
        server = fcgi_single.WSGIServer(app, bindAddress=bind)
    # How many requests it serves at once, for FCGI_GET_VALUES. flup keys these by str
    # but compares the bytes it decodes from the query (a Python 2 leftover), so it
    # answers nothing; keyed by bytes it answers.
    conns = threads if threads > 0 else 1
    server.capability = {b"FCGI_MAX_CONNS": conns, b"FCGI_MAX_REQS": conns, b"FCGI_MPXS_CONNS": 0}
    server.run()


if __name__ == "__main__":
    main(sys.argv)
