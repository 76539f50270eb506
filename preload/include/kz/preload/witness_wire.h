// The TLS witness in the shim (preload/witness.cpp) and kz (launcher/sensors/
// witness_server.h): what they say to each other, and the keyed fingerprints the
// witness scans each outbound TLS write with.
//
// Fingerprints. For one window of each form of each watched value (the form's middle
// 16 bytes, or all of it when shorter; the leak detector's windows), kz sends:
//   - a keyed 64-bit MAC of the window (SipHash-2-4 under a key drawn for the run),
//   - the positions in a 2^kFilterBits-bit filter of each `block`-byte piece of the
//     window (keyed multiplicative hash of the piece).
// A scan hashes the write's aligned `block`-byte pieces (one multiply, one bit test per
// 8 bytes), and only where a piece hits the filter computes the MAC of the windows that
// could hold it. Every occurrence of a window of length L >= 2*block-1 contains an
// aligned piece, so nothing is missed, and the hot loop touches each byte once. No
// value is sent: the agent's process gets MACs and filter bits under a key it cannot
// use to learn more than it already holds (in standard mode it holds the values).
//
// Plain structs of fixed size over SOCK_SEQPACKET; allocation-free on both sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kz::preload::witness {

inline constexpr const char* kEnvWitness = "KZ_WITNESS";   // the socket's path
inline constexpr std::uint32_t kMagic = 0x6b7a7731;         // "kzw1"
inline constexpr std::size_t kMaxWindows = 256;
// A window's (and a sighting's) secret with this bit set is the secret's token, not its
// value (a --blind=proxy run, where no broker sees the agent's tokens).
inline constexpr std::uint16_t kTokenSecret = 0x8000;
inline constexpr std::size_t kMaxPieces = kMaxWindows * 13;
inline constexpr unsigned kFilterBits = 18;
inline constexpr std::size_t kMaxHost = 256;
inline constexpr std::size_t kMaxPeer = 64;

// The write functions, as the sighting's `fn`.
enum Fn : std::uint32_t { kSslWrite = 1, kSslWriteEx = 2, kGnutlsRecordSend = 3 };

struct Window {
  std::uint64_t mac;
  std::uint16_t secret;   // index in kz's list
  std::uint8_t len;
  std::uint8_t pad[5];
};

// kz's answer to Hello: what to look for. `block` 0: count writes only (blind mode:
// the agent holds no value; its tokens go through the broker, which decides).
struct Table {
  std::uint32_t magic;
  std::uint32_t accepted;   // 0: not a process of the run (the witness stays off)
  std::uint64_t k0, k1;     // the MAC's key
  std::uint64_t mult;       // the filter's hash multiplier (odd)
  std::uint32_t block;      // 4 or 8 (0: nothing to scan)
  std::uint32_t refuse;     // --on-leak=kill: wait for kz's verdict on each sighting
  std::uint32_t nwindows, npieces;
  Window windows[kMaxWindows];         // sorted by mac
  std::uint32_t pieces[kMaxPieces];    // filter bit positions
};

enum class Op : std::uint32_t { Hello = 1, Sighting = 2, Counts = 3, Uses = 4 };

// Shim -> kz. Counts and Sighting carry the writes inspected since the last report.
// Sighting waits for a Verdict. Uses (at exit) carries, for one (secret, host) kz said
// is bound, the writes that held it after the first (which kz counted).
struct Message {
  std::uint32_t magic;
  Op op;
  std::uint32_t fn;         // Sighting: Fn
  std::uint16_t secret;     // Sighting: Window::secret
  std::uint8_t wait;        // Sighting: 1 when the writer waits for a Verdict
  std::uint8_t pad;
  std::uint64_t writes;     // Uses: the writes
  char host[kMaxHost];      // Sighting: the server name, else the peer's IP; NUL-terminated
  char peer[kMaxPeer];      // Sighting: "ip:port", or ""
};

struct Verdict {
  std::uint32_t magic;
  std::uint32_t refuse;     // 1: fail the write
  std::uint32_t bound;      // 1: the host may have it (a use); the shim counts the next ones itself
  std::uint32_t pad;
};

// SipHash-2-4 (Aumasson and Bernstein), 64-bit output.
inline std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const unsigned char* p, std::size_t n) {
  std::uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  std::uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  auto rotl = [](std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  auto round = [&] {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  };
  const std::size_t full = n & ~std::size_t{7};
  for (std::size_t i = 0; i < full; i += 8) {
    std::uint64_t m;
    std::memcpy(&m, p + i, 8);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t last = static_cast<std::uint64_t>(n & 0xff) << 56;
  for (std::size_t i = 0; i < (n & 7); ++i) last |= static_cast<std::uint64_t>(p[full + i]) << (8 * i);
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xff;
  round();
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// The filter position of the `block`-byte piece at p.
inline std::uint32_t piece_bit(const unsigned char* p, std::uint32_t block, std::uint64_t mult) {
  std::uint64_t x = 0;
  std::memcpy(&x, p, block);   // block is 4 or 8; little-endian, zero-extended
  return static_cast<std::uint32_t>((x * mult) >> (64 - kFilterBits));
}

// The filter, built from a table (2^kFilterBits bits).
inline constexpr std::size_t kFilterWords = (std::size_t{1} << kFilterBits) / 64;
void build_filter(const Table& t, std::uint64_t* filter);

// Sightings in data: the distinct `secret`s of windows found, at most `cap`, in order
// of discovery; returns how many. No allocation.
std::size_t scan(const Table& t, const std::uint64_t* filter, const unsigned char* data, std::size_t len,
                 std::uint16_t* out, std::size_t cap);

}  // namespace kz::preload::witness
