// Token format shared by the launcher (which mints tokens) and the preload shim (which
// finds them in outbound TLS plaintext). A token is "KZ_TOK_" followed by base62
// characters drawn from a CSPRNG. It ends at the first byte that is not base62, so the
// byte after a token in a buffer must not be a letter or digit (in HTTP it never is:
// a token sits in a header value, a query string or a quoted JSON string).
#pragma once

#include <cstddef>

namespace kz::wire {

inline constexpr char kTokenPrefix[] = "KZ_TOK_";
inline constexpr std::size_t kTokenPrefixLen = sizeof(kTokenPrefix) - 1;
// 17 base62 characters after the prefix carry log2(62^17) = 101 bits of randomness.
inline constexpr std::size_t kMinTokenLen = 24;
// Blind mode serves secrets up to this many bytes (a token is as long as its secret).
inline constexpr std::size_t kMaxSecretLen = 4096;
inline constexpr std::size_t kMaxTokenLen = kMaxSecretLen;

inline constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

constexpr bool is_base62(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// A token has exactly its secret's length when the secret is long enough, so swapping
// never changes HTTP framing; shorter secrets get a kMinTokenLen token.
constexpr std::size_t token_length_for(std::size_t secret_len) {
  return secret_len < kMinTokenLen ? kMinTokenLen : secret_len;
}

}  // namespace kz::wire
