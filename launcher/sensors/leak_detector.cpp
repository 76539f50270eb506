#include "sensors/leak_detector.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "kz/wipe.h"
#include "kz/wire/scanner.h"
#include "kz/wire/token.h"
#include "masking/encodings.h"

namespace kz {

namespace {

// Polynomial rolling hash modulo the Mersenne prime 2^61 - 1, with a random base: a
// keyed hash (which window hashes to what depends on the run's base), cheap to roll.
constexpr std::uint64_t kP = (1ull << 61) - 1;

std::uint64_t mod_p(unsigned __int128 x) {
  std::uint64_t r = static_cast<std::uint64_t>(x & kP) + static_cast<std::uint64_t>(x >> 61);
  r = (r & kP) + (r >> 61);
  return r >= kP ? r - kP : r;
}
std::uint64_t mul(std::uint64_t a, std::uint64_t b) { return mod_p(static_cast<unsigned __int128>(a) * b); }
std::uint64_t add(std::uint64_t a, std::uint64_t b) { return mod_p(static_cast<unsigned __int128>(a) + b); }
std::uint64_t sub(std::uint64_t a, std::uint64_t b) { return a >= b ? a - b : a + kP - b; }

std::uint64_t roll_of(const char* p, std::size_t len, std::uint64_t base) {
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < len; ++i) h = add(mul(h, base), static_cast<unsigned char>(p[i]));
  return h;
}

void mac_of(const std::string& key, const char* p, std::size_t len, unsigned char out[16]) {
  unsigned char full[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(p), len,
       full, &n);
  std::memcpy(out, full, 16);
  OPENSSL_cleanse(full, sizeof full);
}

}  // namespace

LeakDetector LeakDetector::build(const std::vector<WatchedSecret>& secrets) {
  LeakDetector d;
  unsigned char rnd[40];
  RAND_bytes(rnd, sizeof rnd);
  d.key_.assign(reinterpret_cast<char*>(rnd), 32);
  std::uint64_t b = 0;
  std::memcpy(&b, rnd + 32, sizeof b);
  d.base_ = 256 + b % (kP - 512);   // larger than any byte, so distinct windows rarely collide
  OPENSSL_cleanse(rnd, sizeof rnd);

  for (std::size_t i = 0; i < secrets.size(); ++i) {
    const WatchedSecret& s = secrets[i];
    d.names_.push_back(s.name);
    d.bindings_.push_back(s.binding);
    d.canaries_.push_back(s.canary);
    if (!s.token.empty()) d.tokens_.emplace(s.token, i);
    if (s.value.size() < kMinValueLen) {
      d.unwatched_.push_back(s.name);
      continue;
    }
    auto forms = mask_variants(s.value, kMinValueLen);
    for (auto& f : forms) {
      // A PEM armour line ("-----BEGIN ... KEY-----") is in every key of its kind.
      if (f.rfind("-----", 0) == 0) continue;
      const std::size_t len = std::min(f.size(), kWindow);
      const char* at = f.data() + (f.size() - len) / 2;
      Window w;
      w.secret = i;
      w.roll = roll_of(at, len, d.base_);
      mac_of(d.key_, at, len, w.mac);
      auto width = std::find_if(d.widths_.begin(), d.widths_.end(), [&](const Width& x) { return x.len == len; });
      if (width == d.widths_.end()) {
        Width nw;
        nw.len = len;
        nw.top = 1;
        for (std::size_t k = 1; k < len; ++k) nw.top = mul(nw.top, d.base_);
        d.widths_.push_back(std::move(nw));
        width = d.widths_.end() - 1;
      }
      width->by_roll.emplace(w.roll, d.windows_.size());
      d.windows_.push_back(w);
    }
    for (auto& f : forms) wipe(f);
  }
  return d;
}

bool LeakDetector::confirm(const Window& w, const char* p, std::size_t len) const {
  unsigned char m[16];
  mac_of(key_, p, len, m);
  return CRYPTO_memcmp(m, w.mac, sizeof m) == 0;
}

bool LeakDetector::bound(std::size_t i, std::string_view host) const {
  if (i >= bindings_.size()) return false;
  if (bindings_[i].allow_any) return true;
  return !host.empty() && host_allowed(bindings_[i], host);
}

std::vector<Sighting> LeakDetector::scan(std::string_view data, std::string_view host) const {
  std::vector<Sighting> out;
  auto bound = [&](std::size_t i) { return this->bound(i, host); };
  auto note = [&](SightingKind k, std::size_t i) {
    for (const auto& s : out)
      if (s.kind == k && s.secret == i) return;
    out.push_back({k, i, bound(i)});
  };
  // Tokens: found by their fixed prefix, then looked up whole.
  for (std::size_t pos = 0; pos < data.size();) {
    const std::size_t off = wire::find_token_prefix(data.data() + pos, data.size() - pos);
    if (off >= data.size() - pos) break;
    const std::size_t t = pos + off;
    const std::size_t ext = wire::token_extent(data.data() + t, data.size() - t);
    if (auto it = tokens_.find(std::string(data.substr(t, ext))); it != tokens_.end())
      note(SightingKind::Token, it->second);
    pos = t + std::max<std::size_t>(ext, 1);
  }
  // Values: every window position, for each window length in use.
  for (const Width& w : widths_) {
    if (data.size() < w.len) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::uint64_t h = roll_of(data.data(), w.len, base_);
    for (std::size_t i = 0;; ++i) {
      auto [lo, hi] = w.by_roll.equal_range(h);
      for (auto it = lo; it != hi; ++it) {
        const Window& win = windows_[it->second];
        if (confirm(win, data.data() + i, w.len)) note(SightingKind::Value, win.secret);
      }
      if (i + w.len >= data.size()) break;
      h = add(mul(sub(h, mul(p[i], w.top)), base_), p[i + w.len]);
    }
  }
  return out;
}

}  // namespace kz
