"""What the test-only FastCGI responders share: record framing and a threaded unix
socket server. (Real apps use libfcgi or flup; these stand in for misbehaviour that no
real app shows on demand.)"""
import os
import signal
import socket
import struct
import threading


def record(kind, rid, content=b""):
    """One or more FastCGI records of `kind` carrying `content`, padded to 8 bytes."""
    out = b""
    while True:
        piece, content = content[:65535], content[65535:]
        pad = (8 - len(piece) % 8) % 8
        out += struct.pack(">BBHHBx", 1, kind, rid, len(piece), pad) + piece + b"\0" * pad
        if not content:
            return out


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve_unix(path, serve):
    """Listens on the unix socket `path`; each connection runs `serve(conn)` on a thread."""
    # A test runner's thread may have blocked TERM: start with no signal blocked.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
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
