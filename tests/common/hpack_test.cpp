// HPACK (kz/wire/hpack.h) against RFC 7541 Appendix C: every example block of C.2-C.6
// decodes to its header list and leaves the dynamic table at the RFC's size, and the
// Huffman coder reproduces the RFC's strings (C.4, C.6) both ways.
#include "kz/wire/hpack.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace hp = kz::wire::hpack;

namespace {

std::vector<unsigned char> dehex(const std::string& s) {
  std::vector<unsigned char> out;
  std::string digits;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c))) digits += c;
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<unsigned char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Decoder {
  std::unique_ptr<hp::DynTable> t = std::make_unique<hp::DynTable>();
  hp::Field fields[64];
  unsigned char arena[8192];
  Fields decode(const std::vector<unsigned char>& b, hp::DecodeStatus* st = nullptr) {
    hp::DecodedBlock d;
    d.fields = fields;
    d.max_fields = 64;
    d.arena = arena;
    d.arena_cap = sizeof arena;
    const hp::DecodeStatus s = hp::decode_block(*t, b.data(), b.size(), &d);
    if (st) *st = s;
    else EXPECT_EQ(s, hp::DecodeStatus::Ok);
    Fields out;
    for (std::size_t i = 0; i < d.nfields; ++i)
      out.emplace_back(std::string(reinterpret_cast<const char*>(fields[i].name), fields[i].nl),
                       std::string(reinterpret_cast<const char*>(fields[i].value), fields[i].vl));
    return out;
  }
};

const Fields kReq1 = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kReq2 = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"},
                      {"cache-control", "no-cache"}};
const Fields kReq3 = {{":method", "GET"}, {":scheme", "https"}, {":path", "/index.html"},
                      {":authority", "www.example.com"}, {"custom-key", "custom-value"}};
const Fields kResp1 = {{":status", "302"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                       {"location", "https://www.example.com"}};
const Fields kResp2 = {{":status", "307"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                       {"location", "https://www.example.com"}};
const Fields kResp3 = {{":status", "200"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
                       {"location", "https://www.example.com"}, {"content-encoding", "gzip"},
                       {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}};

}  // namespace

TEST(Hpack, C2_1_LiteralWithIndexing) {
  Decoder d;
  EXPECT_EQ(d.decode(dehex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")),
            (Fields{{"custom-key", "custom-header"}}));
  EXPECT_EQ(d.t->size, 55u);
  EXPECT_EQ(d.t->count, 1u);
}

TEST(Hpack, C2_2_LiteralWithoutIndexing) {
  Decoder d;
  EXPECT_EQ(d.decode(dehex("040c 2f73 616d 706c 652f 7061 7468")), (Fields{{":path", "/sample/path"}}));
  EXPECT_EQ(d.t->size, 0u);
}

TEST(Hpack, C2_3_NeverIndexed) {
  Decoder d;
  EXPECT_EQ(d.decode(dehex("1008 7061 7373 776f 7264 0673 6563 7265 74")), (Fields{{"password", "secret"}}));
  EXPECT_TRUE(d.fields[0].never_index);
  EXPECT_EQ(d.t->size, 0u);
}

TEST(Hpack, C2_4_Indexed) {
  Decoder d;
  EXPECT_EQ(d.decode(dehex("82")), (Fields{{":method", "GET"}}));
}

// One example sequence of Appendix C: each block decodes to its list, and the dynamic
// table has the RFC's size after it (table_max: SETTINGS_HEADER_TABLE_SIZE of the example).
struct Step {
  std::string hex;
  const Fields& want;
  unsigned size;
};
void run_sequence(const std::vector<Step>& steps, unsigned table_max = 4096) {
  Decoder d;
  d.t->max_size = d.t->limit = table_max;
  for (const Step& s : steps) {
    EXPECT_EQ(d.decode(dehex(s.hex)), s.want);
    EXPECT_EQ(d.t->size, s.size);
  }
}

TEST(Hpack, C3_RequestsWithoutHuffman) {
  run_sequence({{"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", kReq1, 57},
                {"8286 84be 5808 6e6f 2d63 6163 6865", kReq2, 110},
                {"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", kReq3, 164}});
}

TEST(Hpack, C4_RequestsWithHuffman) {
  run_sequence({{"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", kReq1, 57},
                {"8286 84be 5886 a8eb 1064 9cbf", kReq2, 110},
                {"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", kReq3, 164}});
}

TEST(Hpack, C5_ResponsesWithoutHuffmanEvict) {
  run_sequence({{"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
                 "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70"
                 "6c65 2e63 6f6d",
                 kResp1, 222},
                {"4803 3330 37c1 c0bf", kResp2, 222},
                {"88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
                 "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
                 "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
                 "3d31",
                 kResp3, 215}},
               256);
}

TEST(Hpack, C6_ResponsesWithHuffmanEvict) {
  run_sequence({{"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
                 "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                 kResp1, 222},
                {"4883 640e ffc1 c0bf", kResp2, 222},
                {"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
                 "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
                 "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                 kResp3, 215}},
               256);
}

TEST(Hpack, HuffmanEncodesTheRfcStrings) {
  const std::pair<const char*, const char*> cases[] = {
      {"www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"},
      {"no-cache", "a8eb 1064 9cbf"},
      {"custom-key", "25a8 49e9 5ba9 7d7f"},
      {"custom-value", "25a8 49e9 5bb8 e8b4 bf"},
      {"302", "6402"},
      {"private", "aec3 771a 4b"},
      {"Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"},
      {"https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"},
      {"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
       "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"},
  };
  for (const auto& [plain, hex] : cases) {
    const auto want = dehex(hex);
    const auto* p = reinterpret_cast<const unsigned char*>(plain);
    const std::size_t n = std::strlen(plain);
    ASSERT_EQ(hp::huffman_len(p, n), want.size()) << plain;
    std::vector<unsigned char> enc(want.size());
    hp::huffman_encode(p, n, enc.data());
    EXPECT_EQ(enc, want) << plain;
    std::vector<unsigned char> dec(n + 8);
    ASSERT_EQ(hp::huffman_decode(want.data(), want.size(), dec.data(), dec.size()), static_cast<long>(n));
    EXPECT_EQ(std::string(dec.begin(), dec.begin() + static_cast<long>(n)), plain);
  }
}

TEST(Hpack, HuffmanRoundTripsEveryByteAndRejectsBadPadding) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<unsigned char> in(static_cast<std::size_t>(rng() % 64));
    for (auto& c : in) c = static_cast<unsigned char>(rng());
    std::vector<unsigned char> enc(hp::huffman_len(in.data(), in.size()));
    hp::huffman_encode(in.data(), in.size(), enc.data());
    std::vector<unsigned char> dec(in.size());
    ASSERT_EQ(hp::huffman_decode(enc.data(), enc.size(), dec.data(), dec.size()), static_cast<long>(in.size()));
    ASSERT_EQ(dec, in);
  }
  unsigned char out[16];
  const unsigned char zero_pad[] = {0x00};   // '0' (00000) + padding 000: not EOS bits
  EXPECT_EQ(hp::huffman_decode(zero_pad, 1, out, sizeof out), -1);
  const unsigned char long_pad[] = {0xff, 0xff};   // 16 bits of padding
  EXPECT_EQ(hp::huffman_decode(long_pad, 2, out, sizeof out), -1);
  const unsigned char eos[] = {0xff, 0xff, 0xff, 0xff};   // EOS (30 ones) in the string
  EXPECT_EQ(hp::huffman_decode(eos, 4, out, sizeof out), -1);
}

// A bit-by-bit reference decoder, its code table read back from the encoder: 8 copies of
// a byte encode to exactly its code length in bytes, whose first bits are its code.
struct ReferenceHuffman {
  std::uint32_t code[257];
  unsigned len[257];
  ReferenceHuffman() {
    for (unsigned s = 0; s < 256; ++s) {
      const std::vector<unsigned char> eight(8, static_cast<unsigned char>(s));
      std::vector<unsigned char> enc(hp::huffman_len(eight.data(), 8));
      hp::huffman_encode(eight.data(), 8, enc.data());
      len[s] = static_cast<unsigned>(enc.size());
      code[s] = 0;
      for (unsigned b = 0; b < len[s]; ++b) code[s] = (code[s] << 1) | ((enc[b / 8] >> (7 - b % 8)) & 1u);
    }
    code[256] = (1u << 30) - 1;   // EOS
    len[256] = 30;
  }
  long decode(const unsigned char* p, std::size_t n, unsigned char* out, std::size_t cap) const {
    std::uint32_t c = 0;
    unsigned l = 0;
    std::size_t o = 0;
    for (std::size_t i = 0; i < n * 8; ++i) {
      c = (c << 1) | ((p[i / 8] >> (7 - i % 8)) & 1u);
      if (++l > 30) return -1;
      for (unsigned s = 0; s < 257; ++s) {
        if (len[s] != l || code[s] != c) continue;
        if (s == 256) return -1;
        if (o == cap) return -2;
        out[o++] = static_cast<unsigned char>(s);
        c = 0;
        l = 0;
        break;
      }
    }
    return l <= 7 && c == (1u << l) - 1 ? static_cast<long>(o) : -1;
  }
};

TEST(Hpack, HuffmanDecoderAgreesWithABitwiseReference) {
  // Random input (valid or not), valid encodings with a changed tail, every output cap.
  const ReferenceHuffman ref;
  std::mt19937 rng(11);
  for (int round = 0; round < 20000; ++round) {
    std::vector<unsigned char> in;
    if (round % 2 == 0) {
      in.resize(rng() % 24);
      for (auto& c : in) c = static_cast<unsigned char>(rng() % 3 == 0 ? 0xff : rng());
    } else {
      std::vector<unsigned char> plain(rng() % 40);
      for (auto& c : plain) c = static_cast<unsigned char>(rng() % 4 == 0 ? rng() : 'a' + rng() % 26);
      in.resize(hp::huffman_len(plain.data(), plain.size()));
      hp::huffman_encode(plain.data(), plain.size(), in.data());
      if (!in.empty() && rng() % 2 == 0) in.back() ^= static_cast<unsigned char>(1u << (rng() % 8));
      if (rng() % 4 == 0) in.push_back(static_cast<unsigned char>(rng() % 2 ? 0xff : rng()));
    }
    const std::size_t cap = rng() % 3 == 0 ? rng() % 8 : 64;
    unsigned char want[64], got[64];
    const long w = ref.decode(in.data(), in.size(), want, cap);
    const long g = hp::huffman_decode(in.data(), in.size(), got, cap);
    ASSERT_EQ(g, w) << "round " << round << " length " << in.size() << " cap " << cap;
    if (w > 0) {
      ASSERT_EQ(std::memcmp(got, want, static_cast<std::size_t>(w)), 0) << "round " << round;
    }
  }
}

TEST(Hpack, EncoderUsesStaticTableAndNeverIndexes) {
  unsigned char out[256];
  const auto* m = reinterpret_cast<const unsigned char*>(":method");
  EXPECT_EQ(hp::encode_field(m, 7, reinterpret_cast<const unsigned char*>("GET"), 3, false, out, sizeof out), 1u);
  EXPECT_EQ(out[0], 0x82);
  const auto* a = reinterpret_cast<const unsigned char*>("authorization");
  const auto* v = reinterpret_cast<const unsigned char*>("Bearer secret-value");
  const std::size_t k = hp::encode_field(a, 13, v, 19, true, out, sizeof out);
  ASSERT_GT(k, 0u);
  EXPECT_EQ(out[0] & 0xf0, 0x10);   // never indexed, name by static index 23
  Decoder d;
  const auto f = d.decode(std::vector<unsigned char>(out, out + k));
  EXPECT_EQ(f, (Fields{{"authorization", "Bearer secret-value"}}));
  EXPECT_EQ(d.t->count, 0u);
  EXPECT_EQ(hp::encode_field(a, 13, v, 19, true, out, 4), 0u);   // no room: nothing
}

TEST(Hpack, MalformedBlocksAreRefused) {
  Decoder d;
  hp::DecodeStatus s;
  d.decode(dehex("80"), &s);   // index 0
  EXPECT_EQ(s, hp::DecodeStatus::Malformed);
  d.decode(dehex("be"), &s);   // dynamic index 62 on an empty table
  EXPECT_EQ(s, hp::DecodeStatus::Malformed);
  d.decode(dehex("82 3f e1 1f"), &s);   // size update after a field
  EXPECT_EQ(s, hp::DecodeStatus::Malformed);
  d.decode(dehex("3f e1 ff 03"), &s);   // size update above the limit
  EXPECT_EQ(s, hp::DecodeStatus::Malformed);
  d.decode(dehex("040c 2f73"), &s);   // truncated literal
  EXPECT_EQ(s, hp::DecodeStatus::Malformed);
}
