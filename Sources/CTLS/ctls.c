// See include/CTLS.h. OpenSSL 3 (Debian's libssl-dev).
#include "CTLS.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/core_names.h>
#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gw_tls_ctx {
    SSL_CTX *ssl_ctx;
    int alpn_h2;
    gw_tls_ctx **sni;        // chosen by SNI after this one (the default), in order
    int sni_count;
    // The ticket keys (current, and the one before the last rotation) change while
    // other threads resume sessions: under the lock.
    pthread_mutex_t keys_lock;
    int has_ticket_key;
    int has_previous;
    unsigned char ticket_key[80];
    unsigned char previous_key[80];
    unsigned char *ocsp;     // a DER OCSP response to staple (NULL: none)
    size_t ocsp_len;
};

struct gw_tls_conn {
    SSL *ssl;
    BIO *in;
    BIO *out;
    char error[256];
};

static int ctx_index = -1;

static void last_error(char *err, size_t len, const char *what) {
    if (!err || len == 0) return;
    unsigned long e = ERR_get_error();
    char text[200] = "";
    if (e) ERR_error_string_n(e, text, sizeof text);
    snprintf(err, len, "%s%s%s", what, e ? ": " : "", text);
    ERR_clear_error();
}

static const unsigned char alpn_h2_http11[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_http11[] = "\x08http/1.1";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    (void)ssl;
    gw_tls_ctx *ctx = arg;
    const unsigned char *ours = ctx->alpn_h2 ? alpn_h2_http11 : alpn_http11;
    unsigned int ours_len = ctx->alpn_h2 ? sizeof alpn_h2_http11 - 1 : sizeof alpn_http11 - 1;
    // Our order wins (h2 first when on), among what the client offers.
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, ours_len, in, inlen) == OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN (HTTP/1.1)
}

static int select_by_sni(SSL *ssl, int *alert, void *arg) {
    (void)alert;
    gw_tls_ctx *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !ctx->sni_count) return SSL_TLSEXT_ERR_OK;
    if (gw_tls_ctx_matches(ctx, name)) return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < ctx->sni_count; i++) {
        if (gw_tls_ctx_matches(ctx->sni[i], name)) {
            SSL_set_SSL_CTX(ssl, ctx->sni[i]->ssl_ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;  // unknown name: the default certificate, as nginx does
}

gw_tls_ctx *gw_tls_ctx_new(const char *cert, const char *key, const char *ciphers, const char *suites,
                           int alpn_h2, char *err, size_t err_len) {
    if (ctx_index < 0) ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c) { last_error(err, err_len, "SSL_CTX_new"); return NULL; }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // Idle connections give their read and write buffers back.
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    // Resumption is by tickets (stateless, shared by all workers): no per-process cache
    // of every session (storing, expiring and cleansing each one cost a handshake ~1/5
    // more CPU), as nginx's default ssl_session_cache none.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (ciphers && *ciphers && !SSL_CTX_set_cipher_list(c, ciphers)) {
        last_error(err, err_len, "ciphers");
        SSL_CTX_free(c);
        return NULL;
    }
    if (suites && *suites && !SSL_CTX_set_ciphersuites(c, suites)) {
        last_error(err, err_len, "ciphersuites");
        SSL_CTX_free(c);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        last_error(err, err_len, "cannot load the certificate");
        SSL_CTX_free(c);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, err_len, "the key does not match the certificate");
            ERR_clear_error();
        } else {
            last_error(err, err_len, "cannot load the key");
        }
        SSL_CTX_free(c);
        return NULL;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        last_error(err, err_len, "the key does not match the certificate");
        SSL_CTX_free(c);
        return NULL;
    }
    gw_tls_ctx *ctx = calloc(1, sizeof *ctx);
    pthread_mutex_init(&ctx->keys_lock, NULL);
    ctx->ssl_ctx = c;
    ctx->alpn_h2 = alpn_h2;
    SSL_CTX_set_ex_data(c, ctx_index, ctx);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, ctx);
    SSL_CTX_set_tlsext_servername_callback(c, select_by_sni);
    SSL_CTX_set_tlsext_servername_arg(c, ctx);
    return ctx;
}

void gw_tls_ctx_free(gw_tls_ctx *ctx) {
    if (!ctx) return;
    SSL_CTX_free(ctx->ssl_ctx);
    pthread_mutex_destroy(&ctx->keys_lock);
    free(ctx->ocsp);
    free(ctx->sni);
    free(ctx);
}

int64_t gw_tls_ctx_not_after(gw_tls_ctx *ctx) {
    X509 *leaf = SSL_CTX_get0_certificate(ctx->ssl_ctx);
    if (!leaf) return -1;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1) return -1;
    return (int64_t)timegm(&tm);
}

int gw_tls_ctx_matches(gw_tls_ctx *ctx, const char *name) {
    X509 *leaf = SSL_CTX_get0_certificate(ctx->ssl_ctx);
    return leaf && X509_check_host(leaf, name, 0, 0, NULL) == 1;
}

void gw_tls_ctx_set_sni(gw_tls_ctx *ctx, gw_tls_ctx **others, int count) {
    free(ctx->sni);
    ctx->sni = NULL;
    ctx->sni_count = 0;
    if (count <= 0) return;
    ctx->sni = calloc((size_t)count, sizeof *ctx->sni);
    memcpy(ctx->sni, others, (size_t)count * sizeof *ctx->sni);
    ctx->sni_count = count;
}

// Session tickets sealed with our key (AES-256-CBC, HMAC-SHA256), as OpenSSL's own
// do with a random key per process; one key for all workers lets any resume any. After
// a rotation the previous key still opens tickets, and such a session gets a new one.
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                         EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) {
    gw_tls_ctx *ctx = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
    if (!ctx) return 0;
    unsigned char key[80];
    int found = 0;  // 0: no key; 1: the current; 2: the previous (renew the ticket)
    pthread_mutex_lock(&ctx->keys_lock);
    if (enc && ctx->has_ticket_key) {
        memcpy(key, ctx->ticket_key, 80);
        found = 1;
    } else if (!enc && ctx->has_ticket_key && memcmp(key_name, ctx->ticket_key, 16) == 0) {
        memcpy(key, ctx->ticket_key, 80);
        found = 1;
    } else if (!enc && ctx->has_previous && memcmp(key_name, ctx->previous_key, 16) == 0) {
        memcpy(key, ctx->previous_key, 80);
        found = 2;
    }
    pthread_mutex_unlock(&ctx->keys_lock);
    if (!found) return 0;  // an unknown key: a full handshake
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key + 16, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (enc) {
        if (RAND_bytes(iv, 16) != 1) return -1;
        memcpy(key_name, key, 16);
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 48, iv) != 1) return -1;
        if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
        return 1;
    }
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 48, iv) != 1) return -1;
    return found;
}

int gw_tls_ctx_set_ticket_keys(gw_tls_ctx *ctx, const unsigned char *key80, const unsigned char *previous80) {
    pthread_mutex_lock(&ctx->keys_lock);
    memcpy(ctx->ticket_key, key80, 80);
    ctx->has_ticket_key = 1;
    ctx->has_previous = previous80 != NULL;
    if (previous80) memcpy(ctx->previous_key, previous80, 80);
    pthread_mutex_unlock(&ctx->keys_lock);
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl_ctx, ticket_key_cb) == 1;
}

static int staple_ocsp(SSL *ssl, void *arg) {
    (void)arg;
    gw_tls_ctx *ctx = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);  // (the one SNI chose)
    if (!ctx || !ctx->ocsp) return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc(ctx->ocsp_len);  // the connection frees it
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, ctx->ocsp, ctx->ocsp_len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)ctx->ocsp_len);
    return SSL_TLSEXT_ERR_OK;
}

int gw_tls_ctx_set_ocsp_file(gw_tls_ctx *ctx, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, err_len, "cannot read the OCSP response"); return 0; }
    unsigned char *buf = malloc(65536);
    size_t n = fread(buf, 1, 65536, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = n > 0 && !more ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (!resp) {
        free(buf);
        snprintf(err, err_len, "not a DER OCSP response (openssl ocsp -respout writes one)");
        ERR_clear_error();
        return 0;
    }
    OCSP_RESPONSE_free(resp);
    free(ctx->ocsp);
    ctx->ocsp = buf;
    ctx->ocsp_len = n;
    SSL_CTX_set_tlsext_status_cb(ctx->ssl_ctx, staple_ocsp);
    return 1;
}

gw_tls_ctx *gw_tls_client_ctx_new(const char *alpn_protos_wire, size_t alpn_len) {
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c) return NULL;
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    if (alpn_protos_wire && alpn_len) SSL_CTX_set_alpn_protos(c, (const unsigned char *)alpn_protos_wire, (unsigned)alpn_len);
    gw_tls_ctx *ctx = calloc(1, sizeof *ctx);
    ctx->ssl_ctx = c;
    return ctx;
}

gw_tls_conn *gw_tls_conn_new(gw_tls_ctx *ctx, int server, const char *sni) {
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    if (!ssl) return NULL;
    gw_tls_conn *c = calloc(1, sizeof *c);
    c->ssl = ssl;
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    // An empty input BIO says "retry", not end of file: the handshake and reads wait for more.
    BIO_set_mem_eof_return(c->in, -1);
    SSL_set_bio(ssl, c->in, c->out);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (sni && *sni) SSL_set_tlsext_host_name(ssl, sni);
    }
    return c;
}

void gw_tls_conn_free(gw_tls_conn *c) {
    if (!c) return;
    SSL_free(c->ssl);  // frees both BIOs
    free(c);
}

int gw_tls_feed(gw_tls_conn *c, const void *bytes, size_t n) {
    return n == 0 ? 0 : BIO_write(c->in, bytes, (int)n);
}

static int outcome(gw_tls_conn *c, int r) {
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return GW_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return GW_TLS_CLOSED;
    default:
        last_error(c->error, sizeof c->error, "TLS");
        return GW_TLS_ERROR;
    }
}

// OpenSSL's error queue is per thread, and SSL_get_error reads it: an error left by
// another connection on this thread (a client that left mid-handshake) would make a
// mere "want more bytes" look like a failure, and end a healthy connection. So every
// I/O call starts with an empty queue, as SSL_get_error's manual asks.
int gw_tls_handshake(gw_tls_conn *c) {
    if (SSL_is_init_finished(c->ssl)) return 1;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    return r == 1 ? 1 : outcome(c, r);
}

int gw_tls_read(gw_tls_conn *c, void *buf, size_t n) {
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, (int)n);
    return r > 0 ? r : outcome(c, r);
}

int gw_tls_write(gw_tls_conn *c, const void *buf, size_t n) {
    if (n == 0) return 0;
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, (int)n);
    return r > 0 ? r : outcome(c, r);
}

// A close_notify, once the handshake is done (before, OpenSSL refuses with an error
// and there is no session to close); nothing it queues is left for the next caller.
void gw_tls_shutdown(gw_tls_conn *c) {
    if (SSL_is_init_finished(c->ssl)) SSL_shutdown(c->ssl);
    ERR_clear_error();
}

size_t gw_tls_pending_out(gw_tls_conn *c) {
    return BIO_ctrl_pending(c->out);
}

size_t gw_tls_take_out(gw_tls_conn *c, void *buf, size_t n) {
    int r = BIO_read(c->out, buf, (int)n);
    return r > 0 ? (size_t)r : 0;
}

size_t gw_tls_peek_out(gw_tls_conn *c, const void **bytes) {
    char *p = NULL;
    long n = BIO_get_mem_data(c->out, &p);
    *bytes = p;
    return n > 0 ? (size_t)n : 0;
}

void gw_tls_clear_out(gw_tls_conn *c) { (void)BIO_reset(c->out); }

void gw_tls_alpn(gw_tls_conn *c, char *out, size_t n) {
    const unsigned char *p = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    snprintf(out, n, "%.*s", (int)len, p ? (const char *)p : "");
}

void gw_tls_sni(gw_tls_conn *c, char *out, size_t n) {
    const char *name = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(out, n, "%s", name ? name : "");
}

int gw_tls_resumed(gw_tls_conn *c) { return SSL_session_reused(c->ssl); }

int gw_tls_uses(gw_tls_conn *c, gw_tls_ctx *ctx) { return SSL_get_SSL_CTX(c->ssl) == ctx->ssl_ctx; }

const char *gw_tls_version(gw_tls_conn *c) { return SSL_get_version(c->ssl); }

void gw_tls_error(gw_tls_conn *c, char *out, size_t n) { snprintf(out, n, "%s", c->error); }

void *gw_tls_get_session(gw_tls_conn *c) { return SSL_get1_session(c->ssl); }

void gw_tls_set_session(gw_tls_conn *c, void *session) { SSL_set_session(c->ssl, session); }

void gw_tls_session_free(void *session) { SSL_SESSION_free(session); }
