/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the key handshake
 * between a pool and its workers. Written here rather than taken from a
 * crypto library: the handshake needs nothing else, and APR has no HMAC. */
#ifndef PP_SHA256_H
#define PP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PP__SHA256_SIZE 32
#define PP__SHA256_BLOCK 64

typedef struct pp__sha256_ctx {
  uint32_t h[8];
  uint64_t bytes; /* message length so far */
  unsigned char block[PP__SHA256_BLOCK];
  size_t used; /* bytes waiting in `block` */
} pp__sha256_ctx;

void pp__sha256_init(pp__sha256_ctx *s);
void pp__sha256_update(pp__sha256_ctx *s, const void *data, size_t len);
void pp__sha256_final(pp__sha256_ctx *s, unsigned char out[PP__SHA256_SIZE]);

/* One call: the digest of `len` bytes. */
void pp__sha256(const void *data, size_t len,
                unsigned char out[PP__SHA256_SIZE]);

/* HMAC-SHA256 of `msg` under `key` (any length). */
void pp__hmac_sha256(const void *key, size_t key_len, const void *msg,
                     size_t msg_len, unsigned char out[PP__SHA256_SIZE]);

/* 1 when the `len` bytes at a and b are equal. Its time depends on `len`
 * only, never on where the first difference is, so that comparing a proof
 * tells a guesser nothing about how close it came. */
int pp__equal_ct(const void *a, const void *b, size_t len);

#endif
