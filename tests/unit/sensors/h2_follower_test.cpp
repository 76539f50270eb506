// The TLS tap's HTTP/2 follower: HPACK header blocks (RFC 7541 Appendix C.4: Huffman-coded
// requests sharing one dynamic table) are decoded across frames and writes, so the leak
// detector recognises a value that the raw bytes hide (Huffman) or only refer to (an
// index into the connection's table); bytes the tap did not capture are survivable only
// inside a skipped payload.
#include "sensors/h2_follower.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sensors/leak_detector.h"

namespace kz {
namespace {

const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// RFC 7541 C.4.1-C.4.3: three requests with Huffman coding, one encoder's table.
const std::vector<unsigned char> kReq1 = {0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5,
                                          0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff};
const std::vector<unsigned char> kReq2 = {0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf};
const std::vector<unsigned char> kReq3 = {0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9,
                                          0x7d, 0x7f, 0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf};
// The "secret": the request's :authority, which C.4 sends Huffman-coded, then by index.
const std::string kValue = "www.example.com";

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(payload.size() >> 16));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(payload.size()));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<char>(stream >> s));
  return f + payload;
}
std::string bytes(const std::vector<unsigned char>& v) { return std::string(v.begin(), v.end()); }
std::string headers(std::uint32_t stream, const std::vector<unsigned char>& block) {
  return frame(0x1, 0x4 | 0x1, stream, bytes(block));   // END_HEADERS | END_STREAM
}

LeakDetector detector() {
  Binding b;
  b.hosts = {"api.test"};
  return LeakDetector::build({{"AUTHORITY", kValue, "", b}});
}

struct Tap {
  H2Follower f;
  std::string fields;
  bool write(const std::string& w, std::uint64_t len = 0, pid_t pid = 7, std::uint64_t conn = 0x1000) {
    fields.clear();
    return f.feed(pid, conn, w, len == 0 ? w.size() : len, &fields);
  }
};

TEST(H2Follower, HuffmanValueIsFoundOnlyDecoded) {
  const LeakDetector d = detector();
  Tap t;
  const std::string w = kPreface + frame(0x4, 0, 0, "") + headers(1, kReq1);
  EXPECT_TRUE(d.scan(w, "evil.test").empty()) << "the raw write hides the Huffman-coded value";
  ASSERT_TRUE(t.write(w));
  EXPECT_NE(t.fields.find(":authority: " + kValue + "\r\n"), std::string::npos) << t.fields;
  const auto s = d.scan(t.fields, "evil.test");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, SightingKind::Value);
  EXPECT_FALSE(s[0].bound);
  EXPECT_TRUE(d.scan(t.fields, "api.test")[0].bound);
}

TEST(H2Follower, IndexedReferenceUsesTheConnectionsTable) {
  Tap t;
  ASSERT_TRUE(t.write(kPreface + headers(1, kReq1)));
  // Request 2 names the authority by dynamic index 62 only (one byte, 0xbe).
  ASSERT_TRUE(t.write(headers(3, kReq2)));
  EXPECT_NE(t.fields.find(":authority: " + kValue + "\r\n"), std::string::npos) << t.fields;
  EXPECT_NE(t.fields.find("cache-control: no-cache\r\n"), std::string::npos);
  ASSERT_TRUE(t.write(headers(5, kReq3)));
  EXPECT_NE(t.fields.find("custom-key: custom-value\r\n"), std::string::npos) << t.fields;
  EXPECT_NE(t.fields.find(":authority: " + kValue), std::string::npos);
  // Another connection (another table) has not seen request 1: without its preface it
  // is not followed at all.
  std::string other;
  EXPECT_FALSE(t.f.feed(7, 0x2000, headers(3, kReq2), 21, &other));
  EXPECT_TRUE(other.empty());
  EXPECT_EQ(t.f.lost(), 0u);
}

TEST(H2Follower, PaddedPriorityHeadersWithContinuationFedByteByByte) {
  Tap t;
  ASSERT_TRUE(t.write(kPreface + headers(1, kReq1) + headers(3, kReq2)));
  // Request 3: HEADERS (PADDED | PRIORITY, 3 bytes of padding, the first 6 bytes of the
  // block) then a CONTINUATION with the rest and END_HEADERS, interleaved with nothing.
  const std::string block = bytes(kReq3);
  std::string hp;
  hp.push_back(3);                                  // pad length
  hp += std::string("\x80\x00\x00\x01\x10", 5);      // priority: exclusive, dep 1, weight
  hp += block.substr(0, 6) + std::string(3, '\0');
  const std::string w = frame(0x1, 0x8 | 0x20 | 0x1, 5, hp) + frame(0x9, 0x4, 5, block.substr(6)) +
                        frame(0x0, 0x1, 7, "a DATA frame the follower skips");
  std::string all;
  for (char c : w) {
    ASSERT_TRUE(t.write(std::string(1, c)));
    all += t.fields;
  }
  EXPECT_NE(all.find("custom-key: custom-value\r\n"), std::string::npos) << all;
  EXPECT_NE(all.find(":path: /index.html\r\n"), std::string::npos) << all;
  EXPECT_EQ(t.f.lost(), 0u);
}

TEST(H2Follower, UncapturedBytesInsideDataAreSkipped) {
  Tap t;
  ASSERT_TRUE(t.write(kPreface + headers(1, kReq1)));
  // A 20,000-byte DATA frame in one write, of which the tap captured the first 16 KiB.
  const std::string data = frame(0x0, 0x0, 1, std::string(20000, 'd'));
  ASSERT_TRUE(t.write(data.substr(0, 16384), data.size()));
  ASSERT_TRUE(t.write(headers(3, kReq2)));
  EXPECT_NE(t.fields.find(":authority: " + kValue), std::string::npos) << t.fields;
  EXPECT_EQ(t.f.lost(), 0u);
}

TEST(H2Follower, UncapturedHeaderBytesLoseTheConnection) {
  Tap t;
  ASSERT_TRUE(t.write(kPreface));
  // The header block (which adds to the table) was past the capture: the table is
  // unknown from here on, so nothing more is decoded (a wrong table would misread).
  const std::string w = frame(0x0, 0x0, 1, std::string(16384, 'd')) + headers(1, kReq1);
  ASSERT_TRUE(t.write(w.substr(0, 16384), w.size()));
  EXPECT_EQ(t.f.lost(), 1u);
  ASSERT_TRUE(t.write(headers(3, kReq2)));
  EXPECT_TRUE(t.fields.empty());
  // A new connection on the same object starts over.
  ASSERT_TRUE(t.write(kPreface + headers(1, kReq1)));
  EXPECT_NE(t.fields.find(kValue), std::string::npos);
}

TEST(H2Follower, MalformedBlockOrStrayContinuationLosesTheConnection) {
  Tap t;
  ASSERT_TRUE(t.write(kPreface + frame(0x9, 0x4, 1, bytes(kReq1))));   // CONTINUATION without HEADERS
  EXPECT_EQ(t.f.lost(), 1u);
  Tap u;
  ASSERT_TRUE(u.write(kPreface + headers(1, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));   // index past 2^28
  EXPECT_EQ(u.f.lost(), 1u);
}

TEST(H2Follower, NotHttp2IsNotFollowedAndForgetDropsAProcess) {
  Tap t;
  EXPECT_FALSE(t.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(t.write(kPreface, 0, 9, 1));
  ASSERT_TRUE(t.write(kPreface, 0, 9, 2));
  ASSERT_TRUE(t.write(kPreface, 0, 10, 1));
  EXPECT_EQ(t.f.following(), 3u);
  t.f.forget(9);
  EXPECT_EQ(t.f.following(), 1u);
  EXPECT_FALSE(t.write(headers(1, kReq1), 0, 9, 1));
  EXPECT_TRUE(t.write(headers(1, kReq1), 0, 10, 1));
}

}  // namespace
}  // namespace kz
