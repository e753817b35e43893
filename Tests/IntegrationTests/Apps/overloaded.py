#!/usr/bin/env python3
"""A FastCGI responder that answers FCGI_OVERLOADED on every other connection and a
small page on the rest: no real app here sends FCGI_OVERLOADED, so this stands in for
one (a busy multi-threaded app at its limit). Listens on the unix socket given as argv[1].
"""
import os
import signal
import socket
import struct
import sys
import threading

counter = 0
lock = threading.Lock()


def record(kind, rid, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", 1, kind, rid, len(content), pad) + content + b"\0" * pad


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(conn):
    global counter
    with lock:
        counter += 1
        overloaded = counter % 2 == 1
    try:
        rid = 1
        while True:  # read until the empty STDIN record
            version, kind, rid, length, pad = struct.unpack(">BBHHBx", read_exact(conn, 8))
            read_exact(conn, length + pad)
            if kind == 5 and length == 0:
                break
        if overloaded:
            conn.sendall(record(3, rid, struct.pack(">IB3x", 0, 2)))  # END_REQUEST, FCGI_OVERLOADED
        else:
            body = b"Content-Type: text/plain\r\n\r\nnot overloaded\n"
            conn.sendall(record(6, rid, body) + record(6, rid) + record(3, rid, struct.pack(">IB3x", 0, 0)))
    except EOFError:
        pass
    finally:
        conn.close()


def main():
    # A test runner's thread may have blocked TERM: start with no signal blocked.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    path = sys.argv[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
