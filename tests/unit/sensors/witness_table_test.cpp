// The shim witness's fingerprints (kz/preload/witness_wire.h, built by witness_table.h):
// the scan finds each watched value in every form and at every offset, finds nothing in
// other bytes, and the table holds no value.
#include "sensors/witness_table.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "masking/encodings.h"

namespace kz {
namespace {

using preload::witness::Table;

const std::string kValue = "sk-live-9f8e7d6c5b4a39281706ZZqq";

struct Scanner {
  std::unique_ptr<Table> t;
  std::vector<std::uint64_t> filter = std::vector<std::uint64_t>(preload::witness::kFilterWords);
  explicit Scanner(std::unique_ptr<Table> table) : t(std::move(table)) { preload::witness::build_filter(*t, filter.data()); }
  std::vector<std::uint16_t> scan(const std::string& data) const {
    std::uint16_t out[8];
    const std::size_t n = preload::witness::scan(*t, filter.data(), reinterpret_cast<const unsigned char*>(data.data()),
                                                 data.size(), out, 8);
    return {out, out + n};
  }
};

Scanner one(std::string_view value, bool values = true) {
  return Scanner(build_witness_table({{"OTHER", "unrelated-value-0123456789", "", {}}, {"API_KEY", value, "", {}}},
                                     values, false));
}

TEST(WitnessFingerprint, SipHashMatchesTheReferenceVector) {
  // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
  unsigned char msg[15];
  for (int i = 0; i < 15; ++i) msg[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(preload::witness::siphash24(0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull, msg, sizeof msg),
            0xa129ca6149be45e5ull);
}

TEST(WitnessFingerprint, FindsTheValueAtEveryOffsetAndInEveryForm) {
  const Scanner s = one(kValue);
  EXPECT_EQ(s.t->block, 8u);
  for (const auto& form : mask_variants(kValue, LeakDetector::kMinValueLen)) {
    for (std::size_t pad = 0; pad < 24; ++pad) {
      const std::string data = std::string(pad, 'x') + "Authorization: " + form + "\r\n\r\n";
      EXPECT_EQ(s.scan(data), std::vector<std::uint16_t>{1}) << "offset " << pad << " form " << form.size();
    }
  }
}

TEST(WitnessFingerprint, ShortValuesUseFourBytePieces) {
  const Scanner s = one("9f8e7d6c5b");   // 10 bytes: windows shorter than 15
  EXPECT_EQ(s.t->block, 4u);
  for (std::size_t pad = 0; pad < 12; ++pad)
    EXPECT_EQ(s.scan(std::string(pad, '.') + "9f8e7d6c5b" + std::string(pad, '.')), std::vector<std::uint16_t>{1});
}

TEST(WitnessFingerprint, OtherBytesAreNotASighting) {
  const Scanner s = one(kValue);
  std::mt19937 rng(7);
  std::string noise(1 << 20, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  EXPECT_TRUE(s.scan(noise).empty());
  // A near miss: one byte of the value changed.
  std::string near = kValue;
  near[near.size() / 2] ^= 1;
  EXPECT_TRUE(s.scan("x: " + near).empty());
  EXPECT_TRUE(s.scan("").empty());
  EXPECT_TRUE(s.scan("short").empty());
}

TEST(WitnessFingerprint, BlindModeTablesOnlyCount) {
  const Scanner s = one(kValue, false);
  EXPECT_EQ(s.t->block, 0u);
  EXPECT_EQ(s.t->nwindows, 0u);
  EXPECT_TRUE(s.scan("x: " + kValue).empty());
}

TEST(WitnessFingerprint, ProxyModeTablesFindTokensNotValues) {
  // --blind=proxy: the witness looks for the tokens the agent holds (marked as tokens),
  // never for the values it does not.
  const std::string token = "sk-live-kztokqxA9b8C7d6E5f4G3h2I1";
  const Scanner s(build_witness_table({{"OTHER", "unrelated-value-0123456789", "", {}}, {"API_KEY", kValue, token, {}}},
                                      false, false, true));
  const std::uint16_t want = 1 | preload::witness::kTokenSecret;
  for (const auto& form : mask_variants(token, LeakDetector::kMinValueLen))
    EXPECT_EQ(s.scan("Authorization: " + form + "\r\n"), std::vector<std::uint16_t>{want}) << form.size();
  EXPECT_TRUE(s.scan("x: " + kValue).empty());
  const std::string raw(reinterpret_cast<const char*>(s.t.get()), sizeof(Table));
  for (std::size_t i = 0; i + 6 <= kValue.size(); ++i)
    EXPECT_EQ(raw.find(kValue.substr(i, 6)), std::string::npos) << i;
}

TEST(WitnessFingerprint, TheTableHoldsNoValueBytes) {
  const Scanner s = one(kValue);
  const std::string raw(reinterpret_cast<const char*>(s.t.get()), sizeof(Table));
  for (std::size_t i = 0; i + 6 <= kValue.size(); ++i)
    EXPECT_EQ(raw.find(kValue.substr(i, 6)), std::string::npos) << i;
}

}  // namespace
}  // namespace kz
