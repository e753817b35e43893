#!/usr/bin/env python3
"""A FastCGI responder that answers FCGI_OVERLOADED on every other connection and a
small page on the rest: no real app here sends FCGI_OVERLOADED, so this stands in for
one (a busy multi-threaded app at its limit). Listens on the unix socket given as argv[1].
"""
import struct
import sys
import threading

from fcgitest import read_exact, record, serve_unix

counter = 0
lock = threading.Lock()


def serve(conn):
    global counter
    with lock:
        counter += 1
        overloaded = counter % 2 == 1
    try:
        rid = 1
        params = b""
        while True:  # read until the empty STDIN record
            version, kind, rid, length, pad = struct.unpack(">BBHHBx", read_exact(conn, 8))
            content = read_exact(conn, length + pad)[:length]
            if kind == 4:
                params += content
            if kind == 5 and length == 0:
                break
        if overloaded:
            conn.sendall(record(3, rid, struct.pack(">IB3x", 0, 2)))  # END_REQUEST, FCGI_OVERLOADED
        else:
            # A retried request must arrive whole: its CGI variables too.
            text = b"not overloaded\n" if b"REQUEST_METHOD" in params else b"no CGI variables\n"
            body = b"Content-Type: text/plain\r\n\r\n" + text
            conn.sendall(record(6, rid, body) + record(6, rid) + record(3, rid, struct.pack(">IB3x", 0, 0)))
    except EOFError:
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    serve_unix(sys.argv[1], serve)
