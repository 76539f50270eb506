// libFuzzer target for the HTTP/2 parsers: kz/wire/hpack.h (Huffman, decode_block) and
// the shim's HTTP/2 engine (kz/preload/h2.h) in both directions. The first input byte
// picks the mode:
//   0: the rest is one HPACK header block, decoded against a fresh table; a block that
//      decodes is re-encoded (kz's encoder) and must decode to the same fields with a
//      table that stays empty;
//   1: the rest is what a client writes after the connection preface, written through
//      outbound_write in pieces; what goes out must be whole frames of <= 16384 bytes;
//   2: the rest is what a server sends on an h2 connection, pushed through inbound_push;
//      what the client gets must be whole frames.
// Built by scripts/fuzz-h2 (clang, -fsanitize=fuzzer,address,undefined); the seed corpus
// tests/fuzz/corpus/h2/ is replayed by tests/preload/h2_fuzz_corpus_test.cpp.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kz/preload/conn_table.h"
#include "kz/preload/h2.h"
#include "kz/preload/inbound.h"
#include "kz/preload/outbound.h"
#include "kz/wire/hpack.h"

namespace {

namespace hp = kz::wire::hpack;
using namespace kz::preload;

const std::string kTok = "KZ_TOK_fuzzToken0123456789";   // 26 bytes, value 26 bytes
const std::string kVal = "fuzz-value-0123456789abcde";

void check(bool ok) {
  if (!ok) std::abort();
}

kz::wire::Decision fswap(void*, ConnState*, const char* tok, std::size_t len, bool, char* out, std::size_t cap,
                         std::size_t* vl, std::size_t*) {
  if (len != kTok.size() || std::memcmp(tok, kTok.data(), len) != 0 || cap < kVal.size())
    return kz::wire::Decision::Unknown;
  std::memcpy(out, kVal.data(), kVal.size());
  *vl = kVal.size();
  return kz::wire::Decision::Allow;
}

bool fwrite(void* ctx, const char* p, std::size_t n) {
  static_cast<std::string*>(ctx)->append(p, n);
  return true;
}

// Whole frames of at most 16384 bytes from `from` on.
void check_frames(const std::string& s, std::size_t from) {
  std::size_t pos = from;
  while (pos < s.size()) {
    check(s.size() - pos >= 9);
    const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
    const std::size_t len = (std::size_t{p[0]} << 16) | (std::size_t{p[1]} << 8) | p[2];
    check(len <= 16384);
    check(s.size() - pos >= 9 + len);
    pos += 9 + len;
  }
}

void fuzz_block(const uint8_t* data, std::size_t size) {
  auto t = std::make_unique<hp::DynTable>();
  static hp::Field fields[256], again[256];
  static unsigned char arena[65536], arena2[65536], enc[65536 + 256 * 16];
  hp::DecodedBlock db;
  db.fields = fields;
  db.max_fields = 256;
  db.arena = arena;
  db.arena_cap = sizeof arena;
  if (hp::decode_block(*t, data, size, &db) != hp::DecodeStatus::Ok) return;
  std::size_t o = 0;
  for (std::size_t i = 0; i < db.nfields; ++i) {
    const std::size_t k = hp::encode_field(fields[i].name, fields[i].nl, fields[i].value, fields[i].vl,
                                           fields[i].never_index, enc + o, sizeof enc - o);
    check(k > 0 && k <= hp::encoded_bound(fields[i].nl, fields[i].vl));
    o += k;
  }
  auto t2 = std::make_unique<hp::DynTable>();
  hp::DecodedBlock d2;
  d2.fields = again;
  d2.max_fields = 256;
  d2.arena = arena2;
  d2.arena_cap = sizeof arena2;
  check(hp::decode_block(*t2, enc, o, &d2) == hp::DecodeStatus::Ok);
  check(d2.nfields == db.nfields && t2->count == 0);
  for (std::size_t i = 0; i < db.nfields; ++i) {
    check(again[i].nl == fields[i].nl && std::memcmp(again[i].name, fields[i].name, fields[i].nl) == 0);
    check(again[i].vl == fields[i].vl && std::memcmp(again[i].value, fields[i].value, fields[i].vl) == 0);
  }
  // Huffman: whatever decodes re-encodes to something that decodes the same.
  static unsigned char h[65536], h2[65536 * 2];
  const long n = hp::huffman_decode(data, size, h, sizeof h);
  if (n >= 0) {
    const std::size_t el = hp::huffman_encode(h, static_cast<std::size_t>(n), h2);
    static unsigned char back[65536];
    check(hp::huffman_decode(h2, el, back, sizeof back) == n && std::memcmp(back, h, static_cast<std::size_t>(n)) == 0);
  }
}

void fuzz_engine(const uint8_t* data, std::size_t size, bool server) {
  auto t = std::make_unique<ConnTable>();
  int key = 0;
  BrokerOps b;
  b.swap = fswap;
  std::string sent;
  WriteOps w{&sent, fwrite};
  std::string client = kH2Preface;
  if (!server) client.append(reinterpret_cast<const char*>(data), size);
  // Pieces of 1..64 bytes, sizes taken from the input itself.
  std::size_t pos = 0;
  while (pos < client.size()) {
    std::size_t k = 1 + (static_cast<unsigned char>(client[pos]) % 64);
    if (k > client.size() - pos) k = client.size() - pos;
    if (outbound_write(*t, &key, client.data() + pos, k, false, b, w) == WriteOutcome::Failed) break;
    pos += k;
  }
  check(sent.compare(0, kH2PrefaceLen, kH2Preface) == 0);
  check_frames(sent, kH2PrefaceLen);
  if (!server) return;
  std::string got;
  auto drain = [&] {
    unsigned char out[8192];
    std::size_t n, total = 0;
    while ((n = inbound_take(*t, &key, out, sizeof out)) > 0) {
      got.append(reinterpret_cast<char*>(out), n);
      total += n;
    }
    return total;
  };
  pos = 0;
  while (pos < size) {
    bool failed = false;
    const std::size_t k = inbound_push(*t, &key, data + pos, size - pos, b, &failed);
    const std::size_t out = drain();
    if (failed) break;
    if (k == 0) {   // the engine's input is full: parse what the take made room for
      inbound_push(*t, &key, data + pos, 0, b, &failed);
      if (drain() == 0 && out == 0) break;
      if (failed) break;
    }
    pos += k;
  }
  check_frames(got, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 3) {
    case 0: fuzz_block(data + 1, size - 1); break;
    case 1: fuzz_engine(data + 1, size - 1, false); break;
    default: fuzz_engine(data + 1, size - 1, true); break;
  }
  return 0;
}
