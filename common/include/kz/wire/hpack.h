// HPACK (RFC 7541), the header compression of HTTP/2: Huffman coding (Appendix B), a
// decoder that keeps the dynamic table of the peer's encoder, and an encoder that never
// inserts into the peer's table (static-table references and literals without
// indexing only). The shim and the fallback proxy decode every header block a client or
// server sends and send their own encoding of it (h2.h): the receiving decoder's table
// then stays empty, whatever was swapped, at any length.
//
// Freestanding: no allocation, no exceptions; tables live in the caller's memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::wire::hpack {

// ---- Huffman (Appendix B) ----
// Bytes the Huffman coding of p[0, n) takes.
std::size_t huffman_len(const unsigned char* p, std::size_t n);
// Writes the coding to out (room for huffman_len bytes); returns its length.
std::size_t huffman_encode(const unsigned char* p, std::size_t n, unsigned char* out);
// Decodes p[0, n) into out (at most cap bytes); -1 when malformed (EOS in the string,
// padding longer than 7 bits or not all ones), -2 when longer than cap.
long huffman_decode(const unsigned char* p, std::size_t n, unsigned char* out, std::size_t cap);

// ---- Integers (section 5.1) ----
// Writes v with an N-bit prefix; `first` holds the bits above the prefix of the first
// byte. Returns the bytes written (at most 6 for 32-bit values), 0 when cap is short.
std::size_t encode_int(std::uint32_t v, unsigned prefix_bits, std::uint8_t first, unsigned char* out,
                       std::size_t cap);
// Reads an N-bit-prefix integer at p[*pos]; false when truncated or above 2^28.
bool decode_int(const unsigned char* p, std::size_t n, std::size_t* pos, unsigned prefix_bits,
                std::uint32_t* v);

// ---- The dynamic table (section 4) ----
// The largest table the shim keeps for a peer's encoder. It clamps both ends'
// SETTINGS_HEADER_TABLE_SIZE to this (h2.cpp), so a conforming encoder stays within it.
inline constexpr std::size_t kMaxTableSize = 4096;
inline constexpr std::size_t kStaticCount = 61;

struct DynTable {
  // Entry bytes (name then value), appended at `end`; compacted when full. Live bytes
  // are at most kMaxTableSize, so twice that always has room after compaction.
  unsigned char bytes[2 * kMaxTableSize];
  struct Entry { std::uint32_t off; std::uint16_t nl, vl; };
  // Ring of entries, newest at head - 1.
  Entry ents[kMaxTableSize / 32 + 1];
  std::uint32_t head = 0, count = 0;
  std::uint32_t end = 0;            // bytes in use at the end of `bytes`
  std::uint32_t size = 0;           // RFC size: sum of name + value + 32
  std::uint32_t max_size = 4096;    // the encoder's current maximum (size updates)
  std::uint32_t limit = kMaxTableSize;   // the largest max_size allowed
};

// ---- Decoding (section 6) ----
struct Field {
  const unsigned char* name;
  const unsigned char* value;
  std::uint32_t nl, vl;
  // How the field came: it entered the dynamic table (0x40), was never-indexed (0x10),
  // or neither (an indexed reference or a literal without indexing).
  bool indexed_new = false;
  bool never_index = false;
};

enum class DecodeStatus : std::uint8_t { Ok, Malformed, TooLarge, TooManyFields };

// A decoded header block. Names and values are copied into `arena` (caller memory);
// `fields` holds at most `max_fields`. Size updates at the block's start are listed in
// `size_updates` (the encoder's new maxima, in order; at most 2 are legal).
struct DecodedBlock {
  Field* fields = nullptr;
  std::size_t nfields = 0, max_fields = 0;
  unsigned char* arena = nullptr;
  std::size_t arena_used = 0, arena_cap = 0;
  std::uint32_t size_updates[4];
  std::size_t nsize_updates = 0;
};

// Decodes one complete header block p[0, n), updating t as the peer's encoder did.
// On anything but Ok, t is left in an unknown state: the connection cannot go on.
DecodeStatus decode_block(DynTable& t, const unsigned char* p, std::size_t n, DecodedBlock* out);

// ---- Encoding ----
// Bytes encode_field may write for a field of these lengths, at most.
inline std::size_t encoded_bound(std::size_t nl, std::size_t vl) { return nl + vl + 16; }
// A dynamic table size update (section 6.3).
std::size_t encode_size_update(std::uint32_t size, unsigned char* out, std::size_t cap);
// One field, as a static-table reference when both name and value match an entry, else a
// literal without indexing (never indexed when never_index), the name by static index
// when it has one, each string Huffman-coded when that is shorter. Never touches any
// dynamic table. Returns the bytes written, 0 when cap is short.
std::size_t encode_field(const unsigned char* name, std::size_t nl, const unsigned char* value, std::size_t vl,
                         bool never_index, unsigned char* out, std::size_t cap);

}  // namespace kz::wire::hpack
