// HPACK (RFC 7541). See kz/wire/hpack.h.
#include "kz/wire/hpack.h"

#include <cstring>

namespace kz::wire::hpack {

namespace {

// Generated from RFC 7541 Appendix B (Huffman code) and Appendix A (static table).
constexpr std::uint32_t kHuffCode[257] = {
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
  0x3fffffff,
};
constexpr std::uint8_t kHuffLen[257] = {
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
};
struct StaticEntry { const char* name; const char* value; std::uint8_t nl, vl; };
constexpr StaticEntry kStatic[61] = {
  {":authority", "", 10, 0},
  {":method", "GET", 7, 3},
  {":method", "POST", 7, 4},
  {":path", "/", 5, 1},
  {":path", "/index.html", 5, 11},
  {":scheme", "http", 7, 4},
  {":scheme", "https", 7, 5},
  {":status", "200", 7, 3},
  {":status", "204", 7, 3},
  {":status", "206", 7, 3},
  {":status", "304", 7, 3},
  {":status", "400", 7, 3},
  {":status", "404", 7, 3},
  {":status", "500", 7, 3},
  {"accept-charset", "", 14, 0},
  {"accept-encoding", "gzip, deflate", 15, 13},
  {"accept-language", "", 15, 0},
  {"accept-ranges", "", 13, 0},
  {"accept", "", 6, 0},
  {"access-control-allow-origin", "", 27, 0},
  {"age", "", 3, 0},
  {"allow", "", 5, 0},
  {"authorization", "", 13, 0},
  {"cache-control", "", 13, 0},
  {"content-disposition", "", 19, 0},
  {"content-encoding", "", 16, 0},
  {"content-language", "", 16, 0},
  {"content-length", "", 14, 0},
  {"content-location", "", 16, 0},
  {"content-range", "", 13, 0},
  {"content-type", "", 12, 0},
  {"cookie", "", 6, 0},
  {"date", "", 4, 0},
  {"etag", "", 4, 0},
  {"expect", "", 6, 0},
  {"expires", "", 7, 0},
  {"from", "", 4, 0},
  {"host", "", 4, 0},
  {"if-match", "", 8, 0},
  {"if-modified-since", "", 17, 0},
  {"if-none-match", "", 13, 0},
  {"if-range", "", 8, 0},
  {"if-unmodified-since", "", 19, 0},
  {"last-modified", "", 13, 0},
  {"link", "", 4, 0},
  {"location", "", 8, 0},
  {"max-forwards", "", 12, 0},
  {"proxy-authenticate", "", 18, 0},
  {"proxy-authorization", "", 19, 0},
  {"range", "", 5, 0},
  {"referer", "", 7, 0},
  {"refresh", "", 7, 0},
  {"retry-after", "", 11, 0},
  {"server", "", 6, 0},
  {"set-cookie", "", 10, 0},
  {"strict-transport-security", "", 25, 0},
  {"transfer-encoding", "", 17, 0},
  {"user-agent", "", 10, 0},
  {"vary", "", 4, 0},
  {"via", "", 3, 0},
  {"www-authenticate", "", 16, 0},
};

// Canonical decoding of the Huffman code: the codes of one length are consecutive
// numbers (Appendix B is canonical), so a code of length L is symbol
// sorted[offset[L] + code - first[L]] when code - first[L] < count[L].
struct HuffDecode {
  std::uint32_t first[31] = {};
  std::uint16_t count[31] = {};
  std::uint16_t offset[31] = {};
  std::uint16_t sorted[257] = {};
  constexpr HuffDecode() {
    std::uint16_t k = 0;
    for (unsigned len = 5; len <= 30; ++len) {
      offset[len] = k;
      bool have = false;
      for (unsigned s = 0; s < 257; ++s) {
        if (kHuffLen[s] != len) continue;
        // Sorted by code within the length.
        std::uint16_t j = k;
        while (j > offset[len] && kHuffCode[sorted[j - 1]] > kHuffCode[s]) {
          sorted[j] = sorted[j - 1];
          --j;
        }
        sorted[j] = static_cast<std::uint16_t>(s);
        ++k;
        ++count[len];
        have = true;
      }
      if (have) first[len] = kHuffCode[sorted[offset[len]]];
    }
  }
};
constexpr HuffDecode kHuffDecode;

// Codes of at most 8 bits (every lower-case letter, digit and most punctuation): the
// symbol and code length for each value of the next 8 input bits (length 0: no such
// code starts with them). One lookup per symbol instead of a search bit by bit.
struct HuffFast {
  std::uint16_t sym[256] = {};
  std::uint8_t len[256] = {};
  constexpr HuffFast() {
    for (unsigned s = 0; s < 257; ++s) {
      const unsigned l = kHuffLen[s];
      if (l > 8) continue;
      const unsigned base = kHuffCode[s] << (8 - l);
      for (unsigned k = 0; k < (1u << (8 - l)); ++k) {
        sym[base | k] = static_cast<std::uint16_t>(s);
        len[base | k] = static_cast<std::uint8_t>(l);
      }
    }
  }
};
constexpr HuffFast kHuffFast;

char lower(unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); }

}  // namespace

std::size_t huffman_len(const unsigned char* p, std::size_t n) {
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < n; ++i) bits += kHuffLen[p[i]];
  return static_cast<std::size_t>((bits + 7) / 8);
}

std::size_t huffman_encode(const unsigned char* p, std::size_t n, unsigned char* out) {
  std::uint64_t acc = 0;
  unsigned nbits = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << kHuffLen[p[i]]) | kHuffCode[p[i]];
    nbits += kHuffLen[p[i]];
    while (nbits >= 8) {
      nbits -= 8;
      out[o++] = static_cast<unsigned char>(acc >> nbits);
    }
    acc &= (std::uint64_t{1} << nbits) - 1;
  }
  if (nbits > 0) out[o++] = static_cast<unsigned char>((acc << (8 - nbits)) | (0xffu >> nbits));   // EOS prefix
  return o;
}

long huffman_decode(const unsigned char* p, std::size_t n, unsigned char* out, std::size_t cap) {
  const HuffDecode& d = kHuffDecode;
  std::uint64_t buf = 0;   // its low `have` bits are the input not yet decoded, oldest first
  unsigned have = 0;
  std::size_t i = 0, o = 0;
  for (;;) {
    while (have <= 56 && i < n) {
      buf = (buf << 8) | p[i++];
      have += 8;
    }
    if (have == 0) return static_cast<long>(o);
    // The next 8 bits; at the end, fewer, filled up with ones as padding is.
    const unsigned top8 = have >= 8 ? static_cast<unsigned>(buf >> (have - 8)) & 0xffu
                                    : static_cast<unsigned>((buf << (8 - have)) | ((1u << (8 - have)) - 1)) & 0xffu;
    unsigned len = kHuffFast.len[top8];
    unsigned sym = kHuffFast.sym[top8];
    if (len == 0 || len > have) {
      if (have < 8) {
        // What is left can only be padding: fewer than 8 bits, all ones (the most
        // significant bits of EOS).
        const std::uint64_t ones = (std::uint64_t{1} << have) - 1;
        return (buf & ones) == ones ? static_cast<long>(o) : -1;
      }
      // A code of 9 to 30 bits (canonical: the codes of one length are consecutive).
      len = 0;
      for (unsigned l = 9; l <= 30 && l <= have; ++l) {
        const std::uint32_t code = static_cast<std::uint32_t>(buf >> (have - l)) & ((1u << l) - 1);
        if (d.count[l] != 0 && code >= d.first[l] && code - d.first[l] < d.count[l]) {
          len = l;
          sym = d.sorted[d.offset[l] + (code - d.first[l])];
          break;
        }
      }
      if (len == 0) return -1;   // no code within 30 bits, or 8 or more bits of padding
    }
    if (sym == 256) return -1;   // EOS inside the string
    if (o == cap) return -2;
    out[o++] = static_cast<unsigned char>(sym);
    have -= len;
  }
}

std::size_t encode_int(std::uint32_t v, unsigned prefix_bits, std::uint8_t first, unsigned char* out,
                       std::size_t cap) {
  const std::uint32_t max = (1u << prefix_bits) - 1;
  if (cap == 0) return 0;
  if (v < max) {
    out[0] = static_cast<unsigned char>(first | v);
    return 1;
  }
  out[0] = static_cast<unsigned char>(first | max);
  std::size_t o = 1;
  v -= max;
  while (v >= 128) {
    if (o == cap) return 0;
    out[o++] = static_cast<unsigned char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  if (o == cap) return 0;
  out[o++] = static_cast<unsigned char>(v);
  return o;
}

bool decode_int(const unsigned char* p, std::size_t n, std::size_t* pos, unsigned prefix_bits,
                std::uint32_t* v) {
  if (*pos >= n) return false;
  const std::uint32_t max = (1u << prefix_bits) - 1;
  std::uint32_t x = p[(*pos)++] & max;
  if (x < max) {
    *v = x;
    return true;
  }
  for (unsigned shift = 0; shift <= 21; shift += 7) {
    if (*pos >= n) return false;
    const unsigned char b = p[(*pos)++];
    x += static_cast<std::uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false;   // more than 2^28: no header field is that long
}

namespace {

void table_evict_one(DynTable& t) {
  const std::uint32_t oldest = (t.head + (sizeof t.ents / sizeof t.ents[0]) - t.count) %
                               static_cast<std::uint32_t>(sizeof t.ents / sizeof t.ents[0]);
  t.size -= t.ents[oldest].nl + t.ents[oldest].vl + 32u;
  --t.count;
}

void table_evict_to(DynTable& t, std::uint32_t max) {
  while (t.count > 0 && t.size > max) table_evict_one(t);
  if (t.count == 0) t.end = 0;
}

constexpr std::uint32_t kRing = sizeof(DynTable::ents) / sizeof(DynTable::Entry);

// Entry i (1 = newest) of the dynamic table.
const DynTable::Entry& table_at(const DynTable& t, std::uint32_t i) { return t.ents[(t.head + kRing - i) % kRing]; }

// Inserts name/value (section 4.4): evicts first; an entry larger than the table empties it.
void table_insert(DynTable& t, const unsigned char* name, std::uint32_t nl, const unsigned char* value,
                  std::uint32_t vl) {
  const std::uint32_t sz = nl + vl + 32u;
  if (sz > t.max_size) {
    table_evict_to(t, 0);
    return;
  }
  table_evict_to(t, t.max_size - sz);
  if (t.end + nl + vl > sizeof t.bytes) {
    // Compact: move the live entries, oldest first, to the start.
    unsigned char tmp[sizeof t.bytes];
    std::uint32_t o = 0;
    for (std::uint32_t i = t.count; i >= 1; --i) {
      DynTable::Entry& e = t.ents[(t.head + kRing - i) % kRing];
      std::memcpy(tmp + o, t.bytes + e.off, e.nl + e.vl);
      e.off = o;
      o += e.nl + e.vl;
    }
    std::memcpy(t.bytes, tmp, o);
    explicit_bzero(tmp, o);
    t.end = o;
  }
  // name/value may point into t.bytes (a name by dynamic index): memmove.
  std::memmove(t.bytes + t.end, name, nl);
  std::memmove(t.bytes + t.end + nl, value, vl);
  t.ents[t.head] = DynTable::Entry{t.end, static_cast<std::uint16_t>(nl), static_cast<std::uint16_t>(vl)};
  t.head = (t.head + 1) % kRing;
  ++t.count;
  t.end += nl + vl;
  t.size += sz;
}

bool arena_put(DecodedBlock* out, const unsigned char* p, std::size_t n, const unsigned char** at) {
  if (out->arena_cap - out->arena_used < n) return false;
  std::memcpy(out->arena + out->arena_used, p, n);
  *at = out->arena + out->arena_used;
  out->arena_used += n;
  return true;
}

// The name (and value) of index idx (1-based, static then dynamic).
bool lookup(const DynTable& t, std::uint32_t idx, const unsigned char** name, std::uint32_t* nl,
            const unsigned char** value, std::uint32_t* vl) {
  if (idx == 0) return false;
  if (idx <= kStaticCount) {
    const StaticEntry& e = kStatic[idx - 1];
    *name = reinterpret_cast<const unsigned char*>(e.name);
    *nl = e.nl;
    *value = reinterpret_cast<const unsigned char*>(e.value);
    *vl = e.vl;
    return true;
  }
  const std::uint32_t d = idx - kStaticCount;
  if (d > t.count) return false;
  const DynTable::Entry& e = table_at(t, d);
  *name = t.bytes + e.off;
  *nl = e.nl;
  *value = t.bytes + e.off + e.nl;
  *vl = e.vl;
  return true;
}

// A string literal (section 5.2) into the arena.
DecodeStatus read_string(const unsigned char* p, std::size_t n, std::size_t* pos, DecodedBlock* out,
                         const unsigned char** at, std::uint32_t* len) {
  if (*pos >= n) return DecodeStatus::Malformed;
  const bool huff = (p[*pos] & 0x80) != 0;
  std::uint32_t l = 0;
  if (!decode_int(p, n, pos, 7, &l) || l > n - *pos) return DecodeStatus::Malformed;
  if (!huff) {
    if (!arena_put(out, p + *pos, l, at)) return DecodeStatus::TooLarge;
    *len = l;
  } else {
    const long d = huffman_decode(p + *pos, l, out->arena + out->arena_used, out->arena_cap - out->arena_used);
    if (d < 0) return d == -2 ? DecodeStatus::TooLarge : DecodeStatus::Malformed;
    *at = out->arena + out->arena_used;
    out->arena_used += static_cast<std::size_t>(d);
    *len = static_cast<std::uint32_t>(d);
  }
  *pos += l;
  return DecodeStatus::Ok;
}

}  // namespace

DecodeStatus decode_block(DynTable& t, const unsigned char* p, std::size_t n, DecodedBlock* out) {
  out->nfields = 0;
  out->arena_used = 0;
  out->nsize_updates = 0;
  std::size_t pos = 0;
  bool any_field = false;
  while (pos < n) {
    const unsigned char b = p[pos];
    if ((b & 0xe0) == 0x20) {   // dynamic table size update: only before the first field
      std::uint32_t sz = 0;
      if (any_field || !decode_int(p, n, &pos, 5, &sz) || sz > t.limit) return DecodeStatus::Malformed;
      if (out->nsize_updates == sizeof out->size_updates / sizeof out->size_updates[0]) return DecodeStatus::Malformed;
      out->size_updates[out->nsize_updates++] = sz;
      t.max_size = sz;
      table_evict_to(t, sz);
      continue;
    }
    any_field = true;
    if (out->nfields == out->max_fields) return DecodeStatus::TooManyFields;
    Field& f = out->fields[out->nfields];
    f = Field{};
    if (b & 0x80) {   // indexed
      std::uint32_t idx = 0;
      const unsigned char *nm = nullptr, *vv = nullptr;
      std::uint32_t nl = 0, vl = 0;
      if (!decode_int(p, n, &pos, 7, &idx) || !lookup(t, idx, &nm, &nl, &vv, &vl)) return DecodeStatus::Malformed;
      if (!arena_put(out, nm, nl, &f.name) || !arena_put(out, vv, vl, &f.value)) return DecodeStatus::TooLarge;
      f.nl = nl;
      f.vl = vl;
    } else {
      const bool incremental = (b & 0xc0) == 0x40;
      const unsigned prefix = incremental ? 6 : 4;
      f.indexed_new = incremental;
      f.never_index = !incremental && (b & 0xf0) == 0x10;
      std::uint32_t idx = 0;
      if (!decode_int(p, n, &pos, prefix, &idx)) return DecodeStatus::Malformed;
      if (idx != 0) {
        const unsigned char *nm = nullptr, *vv = nullptr;
        std::uint32_t nl = 0, vl = 0;
        if (!lookup(t, idx, &nm, &nl, &vv, &vl)) return DecodeStatus::Malformed;
        if (!arena_put(out, nm, nl, &f.name)) return DecodeStatus::TooLarge;
        f.nl = nl;
      } else {
        const DecodeStatus s = read_string(p, n, &pos, out, &f.name, &f.nl);
        if (s != DecodeStatus::Ok) return s;
      }
      const DecodeStatus s = read_string(p, n, &pos, out, &f.value, &f.vl);
      if (s != DecodeStatus::Ok) return s;
      if (f.nl > 0xffff || f.vl > 0xffff) return DecodeStatus::TooLarge;
      if (incremental) table_insert(t, f.name, f.nl, f.value, f.vl);
    }
    ++out->nfields;
  }
  return DecodeStatus::Ok;
}

std::size_t encode_size_update(std::uint32_t size, unsigned char* out, std::size_t cap) {
  return encode_int(size, 5, 0x20, out, cap);
}

namespace {

std::size_t put_string(const unsigned char* s, std::size_t l, unsigned char* out, std::size_t cap) {
  const std::size_t hl = huffman_len(s, l);
  const bool huff = hl < l;
  const std::size_t body = huff ? hl : l;
  const std::size_t k = encode_int(static_cast<std::uint32_t>(body), 7, huff ? 0x80 : 0, out, cap);
  if (k == 0 || cap - k < body) return 0;
  if (huff) huffman_encode(s, l, out + k);
  else std::memcpy(out + k, s, l);
  return k + body;
}

// The static table's indices grouped by name length (ascending within a length), so an
// encoder looks only at the few entries whose name is as long as the field's.
constexpr std::size_t kMaxStaticName = 32;
struct StaticByLength {
  std::uint8_t start[kMaxStaticName + 2];   // [start[l], start[l + 1]) in idx: names of length l
  std::uint8_t idx[kStaticCount];
};
constexpr StaticByLength kByLength = [] {
  StaticByLength b{};
  std::uint8_t count[kMaxStaticName + 1] = {};
  for (const StaticEntry& e : kStatic) ++count[e.nl];
  for (std::size_t l = 0; l <= kMaxStaticName; ++l) b.start[l + 1] = static_cast<std::uint8_t>(b.start[l] + count[l]);
  std::uint8_t fill[kMaxStaticName + 1] = {};
  for (std::uint32_t i = 0; i < kStaticCount; ++i) {
    const std::uint8_t l = kStatic[i].nl;
    b.idx[b.start[l] + fill[l]++] = static_cast<std::uint8_t>(i);
  }
  return b;
}();

bool name_eq(const StaticEntry& e, const unsigned char* name, std::size_t nl) {
  if (e.nl != nl) return false;
  for (std::size_t i = 0; i < nl; ++i)
    if (lower(name[i]) != e.name[i]) return false;
  return true;
}

}  // namespace

std::size_t encode_field(const unsigned char* name, std::size_t nl, const unsigned char* value, std::size_t vl,
                         bool never_index, unsigned char* out, std::size_t cap) {
  std::uint32_t name_idx = 0;
  const std::size_t from = nl <= kMaxStaticName ? kByLength.start[nl] : 0;
  const std::size_t to = nl <= kMaxStaticName ? kByLength.start[nl + 1] : 0;
  for (std::size_t k = from; k < to; ++k) {
    const std::uint32_t i = kByLength.idx[k];
    const StaticEntry& e = kStatic[i];
    if (!name_eq(e, name, nl)) continue;
    // HTTP/2 field names are lower case; an exact (name, value) match is one byte.
    if (!never_index && e.vl == vl && std::memcmp(e.value, value, vl) == 0 &&
        std::memcmp(e.name, name, nl) == 0)
      return encode_int(i + 1, 7, 0x80, out, cap);
    if (name_idx == 0 && std::memcmp(e.name, name, nl) == 0) name_idx = i + 1;
  }
  std::size_t o = encode_int(name_idx, 4, never_index ? 0x10 : 0x00, out, cap);
  if (o == 0) return 0;
  if (name_idx == 0) {
    const std::size_t k = put_string(name, nl, out + o, cap - o);
    if (k == 0) return 0;
    o += k;
  }
  const std::size_t k = put_string(value, vl, out + o, cap - o);
  if (k == 0) return 0;
  return o + k;
}

}  // namespace kz::wire::hpack
