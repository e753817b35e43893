#!/usr/bin/env python3
"""A FastCGI responder that misbehaves on purpose, standing in for a buggy or compromised
app (no real one does these on demand). It honours FCGI_KEEP_CONN, so gatewayd may keep
its connections. By PATH_INFO:

  /after      answers "first", then, after its END_REQUEST, writes a second whole
              response ("CROSSED") on the same connection: bytes nobody asked for
  /stderr     ?bytes=N: N bytes of STDERR (lines with control bytes), then "logged"
  /early      answers 413 as soon as its PARAMS are in, without reading the body, and
              closes the connection (an app that refuses an upload early)
  anything    "ok PATH"

Listens on the unix socket given as argv[1].
"""
import struct
import sys
from urllib.parse import parse_qs

from fcgitest import read_exact, record, serve_unix


def pairs(data):
    out = {}
    i = 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            if data[i] & 0x80:
                lengths.append(struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lengths.append(data[i])
                i += 1
        name = data[i:i + lengths[0]].decode()
        i += lengths[0]
        out[name] = data[i:i + lengths[1]].decode(errors="replace")
        i += lengths[1]
    return out


def end(rid):
    return record(3, rid, struct.pack(">IB3x", 0, 0))


def answer(text):
    return b"Content-Type: text/plain\r\n\r\n" + text


def serve(conn):
    try:
        while True:
            keep = False
            params = b""
            rid = 1
            while True:  # BEGIN_REQUEST, PARAMS, then STDIN up to its empty record
                version, kind, rid, length, pad = struct.unpack(">BBHHBx", read_exact(conn, 8))
                content = read_exact(conn, length + pad)[:length]
                if kind == 1:
                    keep = bool(content[2] & 1)
                elif kind == 4:
                    params += content
                    if length == 0 and pairs(params).get("PATH_INFO", "") == "/early":
                        refusal = b"Status: 413 Too Large\r\nContent-Type: text/plain\r\n\r\nrefused\n"
                        conn.sendall(record(6, rid, refusal) + record(6, rid) + end(rid))
                        return
                elif kind == 5 and length == 0:
                    break
            env = pairs(params)
            path = env.get("PATH_INFO", "")
            query = parse_qs(env.get("QUERY_STRING", ""))
            if path == "/after":
                conn.sendall(record(6, rid, answer(b"first\n")) + record(6, rid) + end(rid))
                stray = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nCROSSED\n"
                conn.sendall(record(6, rid, stray) + record(6, rid) + end(rid))
            elif path == "/stderr":
                n = int(query.get("bytes", ["1000"])[0])
                line = b"noise \x1b[31mred\x1b[0m \x07bell\r\n"
                conn.sendall(record(7, rid, (line * (n // len(line) + 1))[:n]))
                conn.sendall(record(6, rid, answer(b"logged\n")) + record(6, rid) + end(rid))
            else:
                conn.sendall(record(6, rid, answer(b"ok " + path.encode() + b"\n")) + record(6, rid) + end(rid))
            if not keep:
                break
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    serve_unix(sys.argv[1], serve)
