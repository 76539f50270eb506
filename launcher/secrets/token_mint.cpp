#include "secrets/token_mint.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "kz/digest.h"
#include "kz/wipe.h"
#include "kz/wire/token.h"
#include "secrets/canary.h"

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

std::string_view token_prefix_for(std::string_view value, TokenShape shape) {
  if (shape == TokenShape::Plain || value.find('.') != std::string_view::npos) return {};
  std::string_view best;
  for (const CanaryShape& s : canary_shapes()) {
    const std::string_view p = canary_prefix(s);
    if (p.empty() || p.size() <= best.size() || !value.starts_with(p)) continue;
    if (wire::is_base62(static_cast<unsigned char>(p.back()))) continue;
    if (value.size() - p.size() < wire::kMinTokenLen) continue;
    best = p;
  }
  return best;
}

SecretValue token_with_prefix(std::string_view prefix, std::string_view token) {
  SecretValue v = SecretValue::allocate(prefix.size() + token.size());
  std::copy(prefix.begin(), prefix.end(), v.data());
  std::copy(token.begin(), token.end(), v.data() + prefix.size());
  return v;
}

std::string token_id(std::string_view token) { return sha256_hex(token).substr(0, 12); }

}  // namespace kz
