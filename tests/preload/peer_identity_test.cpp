// The peer identity a grant is tied to (kz/preload/peer_identity.h): SipHash-2-4 against
// the reference vectors, and a digest that changes with the host, the chain or the
// channel, and not with how the bytes were fed.
#include <gtest/gtest.h>

#include <string>

#include "kz/preload/peer_identity.h"

namespace kz::preload {
namespace {

const unsigned char kRefKey[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

std::uint64_t sip(const std::string& msg) {
  SipHash24 h(kRefKey);
  h.update(msg.data(), msg.size());
  return h.finish();
}

std::string bytes_0_to(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i));
  return s;
}

// From the SipHash paper (Aumasson, Bernstein), appendix A, and its vectors.h.
TEST(SipHash24, MatchesTheReferenceVectors) {
  EXPECT_EQ(sip(""), 0x726fdb47dd0e0e31ull);
  EXPECT_EQ(sip(bytes_0_to(1)), 0x74f839c593dc67fdull);
  EXPECT_EQ(sip(bytes_0_to(15)), 0xa129ca6149be45e5ull);
  EXPECT_EQ(sip(bytes_0_to(8)), 0x93f5f5799a932462ull);
}

TEST(SipHash24, SplitUpdatesGiveTheSameDigest) {
  const std::string msg = bytes_0_to(63);
  for (std::size_t cut = 0; cut <= msg.size(); ++cut) {
    SipHash24 h(kRefKey);
    h.update(msg.data(), cut);
    h.update(msg.data() + cut, msg.size() - cut);
    EXPECT_EQ(h.finish(), sip(msg)) << "cut at " << cut;
  }
}

std::uint64_t id(wire::Channel ch, const std::string& host, const std::string& chain) {
  std::uint64_t out = 0;
  EXPECT_TRUE(peer_identity(ch, host.data(), host.size(), reinterpret_cast<const unsigned char*>(chain.data()),
                            chain.size(), &out));
  return out;
}

TEST(PeerIdentity, SamePeerSameDigestAnyChangeAnother) {
  const auto ossl = wire::Channel::OpenSSL;
  const std::uint64_t a = id(ossl, "api.example.com", "LEAF-A|CA");
  EXPECT_EQ(a, id(ossl, "api.example.com", "LEAF-A|CA"));
  EXPECT_NE(a, id(ossl, "evil.example", "LEAF-A|CA")) << "another SNI";
  EXPECT_NE(a, id(ossl, "api.example.com", "LEAF-B|CA")) << "another chain";
  EXPECT_NE(a, id(ossl, "api.example.com", "")) << "no chain";
  EXPECT_NE(a, id(wire::Channel::GnuTLS, "api.example.com", "LEAF-A|CA")) << "another library";
  // Moving bytes between host and chain is another peer, not the same stream.
  EXPECT_NE(id(ossl, "ab", "c"), id(ossl, "a", "bc"));
}

}  // namespace
}  // namespace kz::preload
