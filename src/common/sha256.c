/* SHA-256 and HMAC-SHA256 (see sha256.h). Straight from FIPS 180-4 §6.2:
 * speed does not matter, one digest per worker start. */
#include "sha256.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}

static void compress(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  uint32_t e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +
                  ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +
                  ((a & b) ^ (a & c) ^ (b & c));
    k = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += k;
}

void pp__sha256_init(pp__sha256_ctx *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->bytes = 0;
  s->used = 0;
}

void pp__sha256_update(pp__sha256_ctx *s, const void *data, size_t len) {
  const unsigned char *p = data;
  s->bytes += len;
  while (len > 0) {
    size_t take = PP__SHA256_BLOCK - s->used;
    if (take > len)
      take = len;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used == PP__SHA256_BLOCK) {
      compress(s->h, s->block);
      s->used = 0;
    }
  }
}

void pp__sha256_final(pp__sha256_ctx *s, unsigned char out[PP__SHA256_SIZE]) {
  uint64_t bits = s->bytes * 8;
  /* Padding: one 1 bit, zeros, then the length in bits, big-endian, so
   * that the whole is a multiple of the block size. */
  s->block[s->used++] = 0x80;
  if (s->used > PP__SHA256_BLOCK - 8) {
    memset(s->block + s->used, 0, PP__SHA256_BLOCK - s->used);
    compress(s->h, s->block);
    s->used = 0;
  }
  memset(s->block + s->used, 0, PP__SHA256_BLOCK - 8 - s->used);
  for (int i = 0; i < 8; i++)
    s->block[PP__SHA256_BLOCK - 1 - i] = (unsigned char)(bits >> (8 * i));
  compress(s->h, s->block);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(s->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)s->h[i];
  }
  /* The state held the key's pads during an HMAC. */
  memset(s, 0, sizeof *s);
}

void pp__sha256(const void *data, size_t len,
                unsigned char out[PP__SHA256_SIZE]) {
  pp__sha256_ctx s;
  pp__sha256_init(&s);
  pp__sha256_update(&s, data, len);
  pp__sha256_final(&s, out);
}

void pp__hmac_sha256(const void *key, size_t key_len, const void *msg,
                     size_t msg_len, unsigned char out[PP__SHA256_SIZE]) {
  unsigned char k[PP__SHA256_BLOCK], pad[PP__SHA256_BLOCK];
  unsigned char inner[PP__SHA256_SIZE];
  /* A key longer than a block is replaced by its digest (RFC 2104 §2). */
  memset(k, 0, sizeof k);
  if (key_len > PP__SHA256_BLOCK)
    pp__sha256(key, key_len, k);
  else if (key_len)
    memcpy(k, key, key_len);

  pp__sha256_ctx s;
  for (int i = 0; i < PP__SHA256_BLOCK; i++)
    pad[i] = k[i] ^ 0x36;
  pp__sha256_init(&s);
  pp__sha256_update(&s, pad, sizeof pad);
  pp__sha256_update(&s, msg, msg_len);
  pp__sha256_final(&s, inner);

  for (int i = 0; i < PP__SHA256_BLOCK; i++)
    pad[i] = k[i] ^ 0x5c;
  pp__sha256_init(&s);
  pp__sha256_update(&s, pad, sizeof pad);
  pp__sha256_update(&s, inner, sizeof inner);
  pp__sha256_final(&s, out);
  memset(k, 0, sizeof k);
  memset(pad, 0, sizeof pad);
}

int pp__equal_ct(const void *a, const void *b, size_t len) {
  /* volatile: the compiler may not turn the loop into an early exit. */
  const volatile unsigned char *x = a, *y = b;
  unsigned char diff = 0;
  for (size_t i = 0; i < len; i++)
    diff |= (unsigned char)(x[i] ^ y[i]);
  return diff == 0;
}
