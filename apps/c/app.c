/* The C sample app on libfcgi: a FastCGI responder with the endpoints every sample app
 * shares (apps/README.md). It serves FastCGI on fd 0 when started by a process manager
 * (gatewayd, spawn-fcgi), or on a socket given as argv[1] ("127.0.0.1:9000" or a path).
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sha256.h"

/* The endpoint is the last segment of PATH_INFO, or of SCRIPT_NAME when PATH_INFO is empty. */
static const char *endpoint(FCGX_ParamArray env) {
    const char *path = FCGX_GetParam("PATH_INFO", env);
    if (!path || !*path || strcmp(path, "/") == 0) path = FCGX_GetParam("SCRIPT_NAME", env);
    if (!path) return "";
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The value of `name` in QUERY_STRING as an integer, or `fallback`. */
static long query_long(FCGX_ParamArray env, const char *name, long fallback) {
    const char *q = FCGX_GetParam("QUERY_STRING", env);
    size_t n = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') return strtol(q + n + 1, NULL, 10);
        q = strchr(q, '&');
        if (q) q++;
    }
    return fallback;
}

/* Copies the value of `name` from QUERY_STRING into out (no decoding; tests use plain tokens). */
static int query_str(FCGX_ParamArray env, const char *name, char *out, size_t cap) {
    const char *q = FCGX_GetParam("QUERY_STRING", env);
    size_t n = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') {
            size_t i = 0;
            for (q += n + 1; *q && *q != '&' && i + 1 < cap; q++) out[i++] = *q;
            out[i] = 0;
            return 1;
        }
        q = strchr(q, '&');
        if (q) q++;
    }
    return 0;
}

static void json_string(FCGX_Stream *out, const char *s) {
    FCGX_PutChar('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { FCGX_PutChar('\\', out); FCGX_PutChar(*p, out); }
        else if (*p < 0x20) FCGX_FPrintF(out, "\\u%04x", *p);
        else FCGX_PutChar(*p, out);
    }
    FCGX_PutChar('"', out);
}

static void env_json(FCGX_Request *r) {
    FCGX_FPrintF(r->out, "Content-Type: application/json\r\n\r\n{");
    for (char **e = r->envp; *e; e++) {
        char *eq = strchr(*e, '=');
        if (!eq) continue;
        *eq = 0;
        json_string(r->out, *e);
        *eq = '=';
        FCGX_PutChar(':', r->out);
        json_string(r->out, eq + 1);
        if (e[1]) FCGX_PutChar(',', r->out);
    }
    FCGX_FPrintF(r->out, "}\n");
}

static void echo_digest(FCGX_Request *r) {
    sha256_ctx c;
    sha256_init(&c);
    char buf[65536];
    long long total = 0;
    int n;
    while ((n = FCGX_GetStr(buf, sizeof buf, r->in)) > 0) { sha256_update(&c, buf, (size_t)n); total += n; }
    uint8_t d[32];
    char hex[65];
    sha256_final(&c, d);
    sha256_hex(d, hex);
    FCGX_FPrintF(r->out, "Content-Type: application/json\r\n\r\n{\"length\":%lld,\"sha256\":\"%s\"}\n", total, hex);
}

static void stream_bytes(FCGX_Request *r) {
    long n = query_long(r->envp, "bytes", 1024);
    FCGX_FPrintF(r->out, "Content-Type: application/octet-stream\r\n\r\n");
    char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)('a' + (i % 26));
    long sent = 0;
    while (sent < n) {
        long chunk = n - sent < 65000 ? n - sent : 65000;
        char *p = buf + (sent % 26);  /* byte i of the stream is 'a' + i % 26 */
        FCGX_PutStr(p, (int)chunk, r->out);
        sent += chunk;
    }
}

static void handle(FCGX_Request *r) {
    const char *ep = endpoint(r->envp);
    if (strcmp(ep, "hello") == 0 || *ep == 0) {
        FCGX_FPrintF(r->out, "Content-Type: text/plain\r\n\r\nHello from C (libfcgi)\n");
    } else if (strcmp(ep, "env") == 0) {
        env_json(r);
    } else if (strcmp(ep, "echo") == 0) {
        echo_digest(r);
    } else if (strcmp(ep, "sleep") == 0) {
        long ms = query_long(r->envp, "ms", 100);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        FCGX_FPrintF(r->out, "Content-Type: text/plain\r\n\r\nslept %ld ms\n", ms);
    } else if (strcmp(ep, "stream") == 0) {
        stream_bytes(r);
    } else if (strcmp(ep, "status") == 0) {
        long code = query_long(r->envp, "code", 200);
        char name[128], value[512];
        FCGX_FPrintF(r->out, "Status: %ld\r\nContent-Type: text/plain\r\n", code);
        if (query_str(r->envp, "name", name, sizeof name) && query_str(r->envp, "value", value, sizeof value))
            FCGX_FPrintF(r->out, "%s: %s\r\n", name, value);
        FCGX_FPrintF(r->out, "\r\nstatus %ld\n", code);
    } else if (strcmp(ep, "stderr") == 0) {
        FCGX_FPrintF(r->err, "a line on stderr from the C app\n");
        FCGX_FPrintF(r->out, "Content-Type: text/plain\r\n\r\nwrote to stderr\n");
    } else {
        FCGX_FPrintF(r->out, "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno endpoint %s\n", ep);
    }
}

int main(int argc, char **argv) {
    if (FCGX_Init() != 0) return 1;
    int sock = 0;
    if (argc > 1) {
        sock = FCGX_OpenSocket(argv[1], 128);
        if (sock < 0) { fprintf(stderr, "c-app: cannot listen on %s\n", argv[1]); return 1; }
    }
    FCGX_Request req;
    FCGX_InitRequest(&req, sock, 0);
    while (FCGX_Accept_r(&req) >= 0) {
        handle(&req);
        FCGX_Finish_r(&req);
    }
    return 0;
}
