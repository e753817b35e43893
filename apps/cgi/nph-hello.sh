#!/bin/sh
# A non-parsed-header program: it writes the whole HTTP response itself.
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Nph: yes\r\n\r\nnph says hello\n'
