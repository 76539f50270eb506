// Token format shared by the launcher (which mints tokens) and the preload shim (which
// finds them in outbound TLS plaintext). A plain token is "KZ_TOK_" followed by base62
// characters drawn from a CSPRNG; a class-shaped one starts with a marker (below). It ends at the first byte that is not base62, so the
// byte after a token in a buffer must not be a letter or digit (in HTTP it never is:
// a token sits in a header value, a query string or a quoted JSON string).
#pragma once

#include <cstddef>

namespace kz::wire {

inline constexpr char kTokenPrefix[] = "KZ_TOK_";
inline constexpr std::size_t kTokenPrefixLen = sizeof(kTokenPrefix) - 1;

// Class-shaped tokens (tokens that look right, launcher/secrets/token_mint.h) start with
// an alphanumeric marker instead of "KZ_TOK_", in the character class of the value's
// first run after its kept prefix: lower-case letters, upper-case letters or digits.
// After the marker a shaped token runs over [A-Za-z0-9_-] (a value's '-' and '_' are
// kept in place). Every scanner finds the four markers in one pass (wire/scanner.h).
inline constexpr char kMarkerLower[] = "kztokqx";
inline constexpr char kMarkerUpper[] = "KZTOKQX";
inline constexpr char kMarkerDigits[] = "7306195284";
inline constexpr std::size_t kMarkerLetterLen = sizeof(kMarkerLower) - 1;   // 7, as "KZ_TOK_"
inline constexpr std::size_t kMarkerDigitLen = sizeof(kMarkerDigits) - 1;   // 10
inline constexpr std::size_t kMaxMarkerLen = kMarkerDigitLen;
// 17 base62 characters after the prefix carry log2(62^17) = 101 bits of randomness.
inline constexpr std::size_t kMinTokenLen = 24;
// Blind mode serves secrets up to this many bytes (a token is as long as its secret).
inline constexpr std::size_t kMaxSecretLen = 4096;
inline constexpr std::size_t kMaxTokenLen = kMaxSecretLen;

inline constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

constexpr bool is_base62(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// The bytes of a class-shaped token after its marker.
constexpr bool is_shaped_text(unsigned char c) { return is_base62(c) || c == '-' || c == '_'; }

// A token has exactly its secret's length when the secret is long enough, so swapping
// never changes HTTP framing; shorter secrets get a kMinTokenLen token.
constexpr std::size_t token_length_for(std::size_t secret_len) {
  return secret_len < kMinTokenLen ? kMinTokenLen : secret_len;
}

}  // namespace kz::wire
