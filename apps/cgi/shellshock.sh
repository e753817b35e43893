#!/bin/bash
# A bash CGI program: a header shaped like a function definition must not run code.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'bash %s\n' "$BASH_VERSION"
printf 'HTTP_X_PAYLOAD=%s\n' "${HTTP_X_PAYLOAD-unset}"
printf 'CONTENT_TYPE=%s\n' "${CONTENT_TYPE-unset}"
printf 'QUERY_STRING=%s\n' "${QUERY_STRING-unset}"
