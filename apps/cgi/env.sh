#!/bin/sh
# Echoes the CGI environment (sorted) and the body's length and SHA-256, so tests can
# check exactly what a program received.
printf 'Content-Type: text/plain\r\n\r\n'
env | LC_ALL=C sort
printf 'BODY_SHA256=%s\n' "$(sha256sum | cut -d' ' -f1)"
printf 'CWD=%s\n' "$(pwd)"
printf 'OPEN_FDS=%s\n' "$(ls /proc/$$/fd | LC_ALL=C sort -n | tr '\n' ' ')"
