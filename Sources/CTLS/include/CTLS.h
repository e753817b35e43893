// The OpenSSL calls gatewayd's TLS module makes, behind plain C functions: many of
// OpenSSL's settings are macros Swift cannot import, and its callbacks are easier to
// write in C. A connection is sans-IO: ciphertext goes in and out through memory
// BIOs, so the workers keep their own sockets, polls and epoll loops.
#ifndef CTLS_H
#define CTLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct gw_tls_ctx gw_tls_ctx;
typedef struct gw_tls_conn gw_tls_conn;

// A server context from a PEM certificate chain (leaf first) and its key. NULL on
// failure, with why in `err`. `ciphers` (TLS 1.2) and `suites` (TLS 1.3) may be NULL
// for the defaults. `alpn_h2`: offer h2 before http/1.1 in ALPN.
gw_tls_ctx *gw_tls_ctx_new(const char *cert, const char *key, const char *ciphers, const char *suites,
                           int alpn_h2, char *err, size_t err_len);
void gw_tls_ctx_free(gw_tls_ctx *ctx);
// The leaf certificate's notAfter (seconds since the epoch), or -1.
int64_t gw_tls_ctx_not_after(gw_tls_ctx *ctx);
// 1 when `name` matches the leaf certificate (its DNS names or CN, wildcards too).
int gw_tls_ctx_matches(gw_tls_ctx *ctx, const char *name);
// Contexts chosen by SNI: `count` others after `ctx` (the default), matched in order.
void gw_tls_ctx_set_sni(gw_tls_ctx *ctx, gw_tls_ctx **others, int count);
// Session tickets with these 80 bytes of key material (name 16, HMAC 32, AES 32), so
// every worker given the same bytes resumes every other's sessions; `previous` (or NULL),
// the key before a rotation, still opens tickets (which are then renewed). 0 on failure.
int gw_tls_ctx_set_ticket_keys(gw_tls_ctx *ctx, const unsigned char *key80, const unsigned char *previous80);

// OCSP stapling: the DER OCSP response in `path` (as `openssl ocsp -respout` writes it)
// is sent to clients that ask (status_request). 0 with why in `err` when it cannot be
// read or is not an OCSP response.
int gw_tls_ctx_set_ocsp_file(gw_tls_ctx *ctx, const char *path, char *err, size_t err_len);

// A client context for tests and probes (no verification). NULL on failure.
gw_tls_ctx *gw_tls_client_ctx_new(const char *alpn_protos_wire, size_t alpn_len);

gw_tls_conn *gw_tls_conn_new(gw_tls_ctx *ctx, int server, const char *sni);
void gw_tls_conn_free(gw_tls_conn *c);

enum {
    GW_TLS_WANT = -1,      // needs more ciphertext in (or nothing to read yet)
    GW_TLS_CLOSED = -2,    // the peer sent close_notify
    GW_TLS_ERROR = -3,     // a protocol error: see gw_tls_error
};

// Ciphertext that arrived from the peer.
int gw_tls_feed(gw_tls_conn *c, const void *bytes, size_t n);
// Runs the handshake as far as the ciphertext in allows: 1 done, GW_TLS_WANT, or GW_TLS_ERROR.
int gw_tls_handshake(gw_tls_conn *c);
// Plaintext out of what was fed: bytes read (> 0), GW_TLS_WANT, GW_TLS_CLOSED or GW_TLS_ERROR.
int gw_tls_read(gw_tls_conn *c, void *buf, size_t n);
// Encrypts plaintext: bytes taken (all of them; the out BIO grows), or GW_TLS_ERROR.
int gw_tls_write(gw_tls_conn *c, const void *buf, size_t n);
// A close_notify for the peer.
void gw_tls_shutdown(gw_tls_conn *c);
// Ciphertext waiting to go to the peer, and taking it: bytes copied into buf.
size_t gw_tls_pending_out(gw_tls_conn *c);
size_t gw_tls_take_out(gw_tls_conn *c, void *buf, size_t n);
// The waiting ciphertext in place (no copy): its length, and `*bytes` pointing at it,
// valid until gw_tls_clear_out (which drops it) or the next TLS call.
size_t gw_tls_peek_out(gw_tls_conn *c, const void **bytes);
void gw_tls_clear_out(gw_tls_conn *c);
// After the handshake: the ALPN protocol chosen ("" if none), the SNI name asked for
// ("" if none), whether the session was resumed, the protocol version ("TLSv1.3").
void gw_tls_alpn(gw_tls_conn *c, char *out, size_t n);
void gw_tls_sni(gw_tls_conn *c, char *out, size_t n);
int gw_tls_resumed(gw_tls_conn *c);
// 1 when the connection serves `ctx`'s certificate (SNI may have switched it).
int gw_tls_uses(gw_tls_conn *c, gw_tls_ctx *ctx);
const char *gw_tls_version(gw_tls_conn *c);
// The last error, as text.
void gw_tls_error(gw_tls_conn *c, char *out, size_t n);
// Session resumption for a client (tests): the session to reuse, from an earlier conn.
void *gw_tls_get_session(gw_tls_conn *c);
void gw_tls_set_session(gw_tls_conn *c, void *session);
void gw_tls_session_free(void *session);

#endif
