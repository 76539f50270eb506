#include "secrets/token_mint.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
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

namespace {

enum class CharClass { Digit, Lower, Upper, Kept };

CharClass class_of(char c) {
  if (c >= '0' && c <= '9') return CharClass::Digit;
  if (c >= 'a' && c <= 'z') return CharClass::Lower;
  if (c >= 'A' && c <= 'Z') return CharClass::Upper;
  return CharClass::Kept;
}

bool is_base64url(char c) { return wire::is_shaped_text(static_cast<unsigned char>(c)); }

// The marker a class-shaped token for `rest` starts with, "" when rest cannot carry one.
std::string_view marker_for(std::string_view rest, const ClassedLayout& l) {
  if (!std::all_of(rest.begin(), rest.end(), is_base64url) || l.keep_tail > rest.size()) return {};
  std::size_t run = 0;
  bool lower = false, upper = false;
  const std::size_t end = rest.size() - l.keep_tail;
  for (; run < end && (l.base64url || class_of(rest[run]) != CharClass::Kept); ++run) {
    lower = lower || class_of(rest[run]) == CharClass::Lower;
    upper = upper || class_of(rest[run]) == CharClass::Upper;
  }
  // A base64url string's class holds every letter: the lower-case marker always fits.
  const std::string_view m = lower || l.base64url ? wire::kMarkerLower
                             : upper             ? wire::kMarkerUpper
                                                 : wire::kMarkerDigits;
  return run >= m.size() ? m : std::string_view{};
}

double bits_after(std::string_view rest, std::size_t from, const ClassedLayout& l) {
  double bits = 0;
  for (std::size_t i = from; i + l.keep_tail < rest.size(); ++i) {
    const CharClass c = class_of(rest[i]);
    if (c == CharClass::Digit) bits += std::log2(10.0);
    else if (c != CharClass::Kept) bits += std::log2(26.0);
  }
  return bits;
}

// The value of a base64url character (0..63).
unsigned b64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<unsigned>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<unsigned>(c - 'a') + 26;
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0') + 52;
  return c == '-' ? 62 : 63;
}

// Uniform random characters from RAND_bytes, a 64-byte block at a time.
class RandomChars {
 public:
  ~RandomChars() { wipe(buf_, sizeof buf_); }
  // A uniform character of `abc` (rejection sampling); false when the RNG failed.
  bool pick(std::string_view abc, char* out) {
    const unsigned limit = 256 - 256 % static_cast<unsigned>(abc.size());
    while (true) {
      if (used_ == sizeof buf_) {
        if (RAND_bytes(buf_, sizeof buf_) != 1) return false;
        used_ = 0;
      }
      const unsigned b = buf_[used_++];
      if (b < limit) {
        *out = abc[b % abc.size()];
        return true;
      }
    }
  }

 private:
  unsigned char buf_[64] = {};
  std::size_t used_ = sizeof buf_;
};

}  // namespace

std::string_view classed_prefix_for(std::string_view value, TokenShape shape, bool jwt) {
  if (shape == TokenShape::Plain) return {};
  if (jwt && value.starts_with("eyJ") && std::count(value.begin(), value.end(), '.') == 2) {
    const std::size_t a = value.find('.'), b = value.find('.', a + 1);
    const bool parts = a > 0 && b > a + 1 && b + 1 < value.size();
    const bool chars = std::all_of(value.begin(), value.end(), [](char c) { return c == '.' || is_base64url(c); });
    if (parts && chars) return value.substr(0, b + 1);
  }
  if (value.find('.') != std::string_view::npos) return {};
  std::string_view best;
  for (const CanaryShape& s : canary_shapes()) {
    const std::string_view p = canary_prefix(s);
    if (!p.empty() && p.size() > best.size() && value.starts_with(p)) best = p;
  }
  return best;
}

ClassedLayout classed_layout_for(std::string_view value, std::string_view prefix) {
  ClassedLayout l;
  if (!prefix.empty() && prefix.back() == '.') {
    l.base64url = l.jwt_signature = true;
    return l;
  }
  for (const CanaryShape& s : canary_shapes()) {
    if (canary_prefix(s) != prefix) continue;
    // OpenAI's and Anthropic's keys are base64url after their prefix (no fixed parts).
    l.base64url = prefix.starts_with("sk-") && prefix != "sk_live_" && prefix != "sk_test_";
    // A literal end of the format ("AA") that the value has too stays.
    std::size_t lit = 0;
    while (lit < s.pattern.size() && std::string_view("*#^+").find(s.pattern[s.pattern.size() - 1 - lit]) ==
                                         std::string_view::npos)
      ++lit;
    if (lit > 0 && lit < s.pattern.size() && value.ends_with(s.pattern.substr(s.pattern.size() - lit))) l.keep_tail = lit;
  }
  return l;
}

double classed_token_bits(std::string_view rest, ClassedLayout layout) {
  const std::string_view m = marker_for(rest, layout);
  return m.empty() ? 0 : bits_after(rest, m.size(), layout);
}

Result<SecretValue> mint_classed_token(std::string_view rest, ClassedLayout layout) {
  const std::string_view m = marker_for(rest, layout);
  if (m.empty() || bits_after(rest, m.size(), layout) < kMinShapedBits || rest.size() > wire::kMaxTokenLen)
    return SecretValue{};
  static constexpr std::string_view kDigit = "0123456789", kLower = "abcdefghijklmnopqrstuvwxyz",
                                    kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  SecretValue t = SecretValue::allocate(rest.size());
  char* p = t.data();
  std::copy(m.begin(), m.end(), p);
  RandomChars rnd;
  // A JWT signature of 4k+2 or 4k+3 characters ends in one whose low 4 or 2 bits are
  // unused: zero in a canonical encoding.
  const unsigned unused = !layout.jwt_signature ? 0 : rest.size() % 4 == 2 ? 15 : rest.size() % 4 == 3 ? 3 : 0;
  for (std::size_t i = m.size(); i < rest.size(); ++i) {
    const CharClass c = class_of(rest[i]);
    if (c == CharClass::Kept || i + layout.keep_tail >= rest.size()) {
      p[i] = rest[i];
      continue;
    }
    const std::string_view abc = c == CharClass::Digit ? kDigit : c == CharClass::Lower ? kLower : kUpper;
    const bool last = i + 1 == rest.size() &&
                      std::any_of(abc.begin(), abc.end(), [&](char x) { return (b64url_value(x) & unused) == 0; });
    do {
      if (!rnd.pick(abc, &p[i])) return make_error(ErrorKind::Internal, "the random number generator failed");
    } while (last && (b64url_value(p[i]) & unused) != 0);
  }
  return t;
}

SecretValue token_with_prefix(std::string_view prefix, std::string_view token) {
  SecretValue v = SecretValue::allocate(prefix.size() + token.size());
  std::copy(prefix.begin(), prefix.end(), v.data());
  std::copy(token.begin(), token.end(), v.data() + prefix.size());
  return v;
}

std::string token_id(std::string_view token) { return sha256_hex(token).substr(0, 12); }

}  // namespace kz
