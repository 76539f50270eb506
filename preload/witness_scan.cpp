// The witness's scan (witness_wire.h): shared by the shim and kz's tests.
#include "kz/preload/witness_wire.h"

#include <type_traits>

namespace kz::preload::witness {

void build_filter(const Table& t, std::uint64_t* filter) {
  std::memset(filter, 0, kFilterWords * sizeof(std::uint64_t));
  const std::uint32_t n = t.npieces < kMaxPieces ? t.npieces : static_cast<std::uint32_t>(kMaxPieces);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t b = t.pieces[i] & ((1u << kFilterBits) - 1);
    filter[b / 64] |= std::uint64_t{1} << (b % 64);
  }
}

namespace {

// The window with this MAC and length, or null (binary search: windows are sorted).
const Window* find(const Table& t, std::uint64_t mac, std::size_t len) {
  std::uint32_t lo = 0, hi = t.nwindows < kMaxWindows ? t.nwindows : static_cast<std::uint32_t>(kMaxWindows);
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (t.windows[mid].mac < mac) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < t.nwindows && t.windows[lo].mac == mac; ++lo)
    if (t.windows[lo].len == len) return &t.windows[lo];
  return nullptr;
}

// The piece's filter position, with the piece size known to the compiler (a load and a
// multiply; piece_bit()'s memcpy of a variable size would be a call).
template <std::uint32_t kBlock>
std::uint32_t bit_of(const unsigned char* p, std::uint64_t mult) {
  using Word = std::conditional_t<kBlock == 8, std::uint64_t, std::uint32_t>;
  Word w;
  std::memcpy(&w, p, sizeof w);
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(w) * mult) >> (64 - kFilterBits));
}

template <std::uint32_t kBlock>
std::size_t scan_pieces(const Table& t, const std::uint64_t* filter, const unsigned char* data, std::size_t len,
                        std::uint16_t* out, std::size_t cap) {
  constexpr std::uint32_t block = kBlock;
  // The window lengths in use (at most 16 - 4 + 1 of them), as a bit set.
  std::uint32_t lens = 0;
  for (std::uint32_t i = 0; i < t.nwindows && i < kMaxWindows; ++i) lens |= 1u << (t.windows[i].len & 31);
  const std::uint64_t mult = t.mult;
  std::size_t found = 0;
  for (std::size_t a = 0; a + block <= len; a += block) {
    const std::uint32_t b = bit_of<kBlock>(data + a, mult);
    if ((filter[b / 64] & (std::uint64_t{1} << (b % 64))) == 0) continue;
    // A window of length L holding the piece at a starts in [a + block - L, a].
    for (std::uint32_t L = 1; L < 32; ++L) {
      if ((lens & (1u << L)) == 0 || L > len) continue;
      const std::size_t first = a + block >= L ? a + block - L : 0;
      const std::size_t last = a + L <= len ? a : len - L;
      for (std::size_t s = first; s <= last; ++s) {
        const Window* w = find(t, siphash24(t.k0, t.k1, data + s, L), L);
        if (w == nullptr) continue;
        bool seen = false;
        for (std::size_t i = 0; i < found; ++i) seen = seen || out[i] == w->secret;
        if (!seen && found < cap) out[found++] = w->secret;
      }
    }
  }
  return found;
}

}  // namespace

std::size_t scan(const Table& t, const std::uint64_t* filter, const unsigned char* data, std::size_t len,
                 std::uint16_t* out, std::size_t cap) {
  if (t.block == 8) return scan_pieces<8>(t, filter, data, len, out, cap);
  if (t.block == 4) return scan_pieces<4>(t, filter, data, len, out, cap);
  return 0;
}

}  // namespace kz::preload::witness
