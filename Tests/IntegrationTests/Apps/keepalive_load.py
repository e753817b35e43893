#!/usr/bin/env python3
"""Keep-alive load for the drain tests: N client connections, each sending GET requests
one after another on one kept connection, as wrk or a browser does.

A response with "Connection: close" is read whole, then the client opens a new
connection (that is how a server ends keep-alive cleanly). Anything else that ends a
request without its whole response is a failure: a reset, an EOF before or inside the
response, a timeout, or a refused connect (a reload must never refuse).

With --stop-ok, a refused connect after --stop-file appears ends that client quietly:
the server was told to stop, and a stopped server refusing new connections loses
nothing that was sent to it.

Runs until --stop-file exists (plus --linger seconds), then prints JSON:
{"requests": N, "failures": N, "closes": N, "errors": ["...", ...]}.
"""
import argparse
import json
import os
import socket
import ssl
import threading
import time


def read_response(sock, buf):
    """Reads one response; returns (status, close_requested, rest of the buffer)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError("EOF before the response head" if not buf else "EOF inside the response head")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    close = False
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value:
            close = True
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
    if chunked:
        while True:
            while b"\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    raise EOFError("EOF inside a chunked body")
                buf += data
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise EOFError("EOF inside a chunk")
                buf += data
            buf = buf[size + 2:]
            if size == 0:
                break
    elif length is not None:
        while len(buf) < length:
            data = sock.recv(65536)
            if not data:
                raise EOFError("EOF inside the body")
            buf += data
        buf = buf[length:]
    else:
        raise ValueError("response without a length")
    return status, close, buf


# HTTPS without a certificate check (the tests' certificates are self-signed).
TLS_CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
TLS_CONTEXT.check_hostname = False
TLS_CONTEXT.verify_mode = ssl.CERT_NONE


def client(args, stats, lock, stop_event):
    sock = None
    buf = b""
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (args.path, args.port)).encode()
    while not stop_event.is_set():
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
                if args.tls:
                    sock = TLS_CONTEXT.wrap_socket(sock, server_hostname="localhost")
                buf = b""
            sock.sendall(request)
            status, close, buf = read_response(sock, buf)
            with lock:
                stats["requests"] += 1
                if status != 200:
                    stats["failures"] += 1
                    stats["errors"].append("%.3f status %d" % (time.time(), status))
            if close:
                with lock:
                    stats["closes"] += 1
                sock.close()
                sock = None
        except ConnectionRefusedError as e:
            if args.stop_ok and os.path.exists(args.signal_file):
                break
            with lock:
                stats["failures"] += 1
                stats["errors"].append("%.3f connect: %s" % (time.time(), e))
            time.sleep(0.01)
            sock = None
        except (OSError, EOFError, ValueError) as e:
            with lock:
                stats["failures"] += 1
                stats["errors"].append("%.3f %s: %s" % (time.time(), type(e).__name__, e))
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--stop-file", required=True, help="stop once this file exists")
    p.add_argument("--signal-file", default="", help="with --stop-ok: the server was told to stop once this exists")
    p.add_argument("--stop-ok", action="store_true")
    p.add_argument("--tls", action="store_true", help="speak HTTPS (no certificate check)")
    p.add_argument("--ready-file", default="", help="created once every client has had a response")
    args = p.parse_args()
    stats = {"requests": 0, "failures": 0, "closes": 0, "errors": []}
    lock = threading.Lock()
    stop_event = threading.Event()
    threads = [threading.Thread(target=client, args=(args, stats, lock, stop_event)) for _ in range(args.connections)]
    for t in threads:
        t.start()
    announced = False
    while not os.path.exists(args.stop_file) and any(t.is_alive() for t in threads):
        if args.ready_file and not announced:
            with lock:
                if stats["requests"] >= args.connections:
                    open(args.ready_file, "w").close()
                    announced = True
        time.sleep(0.01)
    stop_event.set()
    for t in threads:
        t.join()
    stats["errors"] = stats["errors"][:20]
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
