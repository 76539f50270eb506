#include "secrets/token_mint.h"

#include <openssl/rand.h>

#include <cstring>

#include "kz/digest.h"
#include "kz/wipe.h"
#include "kz/wire/token.h"

namespace kz {

Result<SecretValue> mint_token(std::size_t length) {
  using namespace kz::wire;
  if (length < kMinTokenLen || length > kMaxTokenLen)
    return make_error(ErrorKind::Internal, "token length out of range");
  SecretValue t = SecretValue::allocate(length);
  char* p = t.data();
  std::memcpy(p, kTokenPrefix, kTokenPrefixLen);
  std::size_t i = kTokenPrefixLen;
  unsigned char rnd[64];
  while (i < length) {
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
      wipe(rnd, sizeof rnd);
      return make_error(ErrorKind::Internal, "the random number generator failed");
    }
    // 248 = 4 * 62: bytes at or above it are dropped so that `b % 62` is uniform.
    for (unsigned char b : rnd) {
      if (i == length) break;
      if (b < 248) p[i++] = kBase62[b % 62];
    }
  }
  wipe(rnd, sizeof rnd);
  return t;
}

std::string token_id(std::string_view token) { return sha256_hex(token).substr(0, 12); }

}  // namespace kz
