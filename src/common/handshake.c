/* The key handshake that opens every channel (wire.h): the parent sends a
 * fresh random nonce, the worker answers HMAC-SHA256(key, nonce). A
 * process that does not know the pool's key never gets a task, and the
 * key itself never crosses the channel. */
#include "internal.h"

#include <string.h>

pp__test_hooks pp__test;

void pp__handshake_proof(const char *key,
                         const unsigned char nonce[PP__NONCE_SIZE],
                         unsigned char proof[PP__SHA256_SIZE]) {
  /* A worker that lost its key answers for the empty key: it is refused
   * like any other wrong proof. */
  if (!key)
    key = "";
  pp__hmac_sha256(key, strlen(key), nonce, PP__NONCE_SIZE, proof);
}

int pp__handshake_check(const char *key,
                        const unsigned char nonce[PP__NONCE_SIZE],
                        const unsigned char *proof, size_t len) {
  unsigned char want[PP__SHA256_SIZE];
  if (!proof || len != sizeof want)
    return 0;
  pp__handshake_proof(key, nonce, want);
  return pp__equal_ct(want, proof, sizeof want);
}
