/* SHA-256 (FIPS 180-4), small and dependency-free, for the echo endpoint's digest. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    uint8_t block[64];
    size_t used;          /* bytes waiting in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* Writes 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t digest[32], char out[65]);
