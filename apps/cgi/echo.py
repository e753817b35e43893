#!/usr/bin/env python3
"""The Python sample CGI program. Its query picks a behaviour the tests need:

  (none)          echo the environment as JSON, with the body's length and SHA-256
  sleep=S         sleep S seconds first (the run timeout, max_processes)
  hang=1          ignore SIGTERM and sleep forever (SIGKILL after kill_grace)
  flood=N         write N KiB to stderr, then answer
  nostdin=1       answer without reading the body
  background=1    start a child that keeps stdout open for 30 s, then answer
  crash=1         die of SIGSEGV before any output
  garbage=1       write something that is not a CGI head
  redirect=local  Location: /cgi-bin/env.sh (served by gatewayd itself)
  redirect=client Location: http://example.com/ (becomes a 302)
  big=N           a body of N MiB
  status=N        Status: N
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qs

q = {k: v[0] for k, v in parse_qs(os.environ.get("QUERY_STRING", "")).items()}
out = sys.stdout.buffer

if "sleep" in q:
    time.sleep(float(q["sleep"]))
if "hang" in q:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)
if "crash" in q:
    os.kill(os.getpid(), signal.SIGSEGV)
if "flood" in q:
    line = b"x" * 1023 + b"\n"
    for _ in range(int(q["flood"])):
        sys.stderr.buffer.write(line)
    sys.stderr.flush()
if "garbage" in q:
    out.write(b"this is not a CGI head\n\n")
    sys.exit(0)
if q.get("redirect") == "local":
    out.write(b"Location: /cgi-bin/env.sh?from=redirect\r\n\r\n")
    sys.exit(0)
if q.get("redirect") == "client":
    out.write(b"Location: http://example.com/elsewhere\r\n\r\n")
    sys.exit(0)
if "background" in q:
    # The child inherits stdout and holds it open after this program exits.
    subprocess.Popen(["sleep", "30"])
    out.write(b"Content-Type: text/plain\r\n\r\nstarted a background child\n")
    sys.exit(0)
if "big" in q:
    n = int(q["big"]) << 20
    out.write(b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % n)
    block = b"0123456789abcdef" * 4096
    for _ in range(n // len(block)):
        out.write(block)
    sys.exit(0)

body = b"" if "nostdin" in q else sys.stdin.buffer.read()
status = q.get("status")
head = "Content-Type: application/json\r\n"
if status:
    head += "Status: %s\r\n" % status
out.write((head + "\r\n").encode())
out.write(json.dumps({
    "env": dict(os.environ),
    "body_length": len(body),
    "body_sha256": hashlib.sha256(body).hexdigest(),
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
    "pgid_is_pid": os.getpgid(0) == os.getpid(),
}, sort_keys=True).encode())
