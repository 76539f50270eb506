#include "kz/preload/peer_identity.h"

#include <pthread.h>
#include <sys/random.h>

#include <cstring>

namespace kz::preload {

namespace {

inline std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline std::uint64_t load_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// One SipRound on the four state words.
inline void round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3) {
  v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
  v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
  v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
  v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
}

// The process's key: made on first use, kept for the life of the process (a fork child
// keeps it, and with it the grants it inherited stay comparable).
unsigned char g_key[16];
bool g_have_key = false;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

void make_key() {
  std::size_t got = 0;
  while (got < sizeof g_key) {
    const ssize_t n = getrandom(g_key + got, sizeof g_key - got, 0);
    if (n <= 0) return;   // no key: peer_identity answers false, grants are never reused
    got += static_cast<std::size_t>(n);
  }
  g_have_key = true;
}

}  // namespace

SipHash24::SipHash24(const unsigned char key[16]) {
  const std::uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
  v0_ = k0 ^ 0x736f6d6570736575ull;
  v1_ = k1 ^ 0x646f72616e646f6dull;
  v2_ = k0 ^ 0x6c7967656e657261ull;
  v3_ = k1 ^ 0x7465646279746573ull;
}

void SipHash24::compress(std::uint64_t m) {
  v3_ ^= m;
  round(v0_, v1_, v2_, v3_);
  round(v0_, v1_, v2_, v3_);
  v0_ ^= m;
}

void SipHash24::update(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += n;
  // Fill the pending word first.
  while (n > 0 && tail_len_ > 0) {
    tail_ |= std::uint64_t{*p++} << (8 * tail_len_);
    --n;
    if (++tail_len_ == 8) {
      compress(tail_);
      tail_ = 0;
      tail_len_ = 0;
    }
  }
  for (; n >= 8; n -= 8, p += 8) compress(load_le64(p));
  for (; n > 0; --n) tail_ |= std::uint64_t{*p++} << (8 * tail_len_++);
}

std::uint64_t SipHash24::finish() {
  compress(tail_ | (total_ << 56));
  v2_ ^= 0xff;
  for (int i = 0; i < 4; ++i) round(v0_, v1_, v2_, v3_);
  return v0_ ^ v1_ ^ v2_ ^ v3_;
}

bool peer_identity(wire::Channel channel, const char* host, std::size_t host_len, const unsigned char* chain,
                   std::size_t chain_len, std::uint64_t* out) {
  pthread_once(&g_once, make_key);
  if (!g_have_key) return false;
  SipHash24 h(g_key);
  // Each field with its length first, so no two different (host, chain) pairs feed the
  // same byte stream.
  const auto ch = static_cast<unsigned char>(channel);
  const std::uint64_t hl = host_len, cl = chain_len;
  h.update(&ch, 1);
  h.update(&hl, sizeof hl);
  h.update(host, host_len);
  h.update(&cl, sizeof cl);
  h.update(chain, chain_len);
  *out = h.finish();
  return true;
}

}  // namespace kz::preload
