// The fetch tool's address guard: every refused class, the IPv6 forms that carry an
// IPv4 address, public addresses, and the allow flags.
#include <gtest/gtest.h>

#include <sys/un.h>

#include "mcp/address_guard.h"
#include "socket_addrs.h"

namespace kz::mcp {
namespace {

// The refusal for `ip` (IPv4 or IPv6 text) under `p`.
std::string refusal(const char* ip, const AddressPolicy& p = {}) {
  const int family = std::string_view(ip).find(':') == std::string_view::npos ? AF_INET : AF_INET6;
  sockaddr_storage ss = test::inet_addr_of(family, ip, 443);
  return address_refusal(reinterpret_cast<const sockaddr*>(&ss), test::sockaddr_len(ss), p);
}

bool mentions(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

TEST(AddressGuard, PublicAndPrivateAddressesAllowed) {
  for (const char* ip : {"8.8.8.8", "1.1.1.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1",
                         "169.253.255.255", "169.255.0.1", "128.0.0.1", "126.255.255.255", "1.0.0.0",
                         "2606:4700::1111", "2001:4860:4860::8888", "fd00::1", "fd00:ec2::253",
                         "fec0::1", "64:ff9b::808:808", "::ffff:8.8.8.8", "::8.8.8.8"}) {
    EXPECT_EQ(refusal(ip), "") << ip;
  }
}

TEST(AddressGuard, Loopback) {
  for (const char* ip : {"127.0.0.1", "127.1.2.3", "127.255.255.255", "::1"}) {
    const std::string r = refusal(ip);
    EXPECT_TRUE(mentions(r, "is a loopback address")) << ip << ": " << r;
    EXPECT_TRUE(mentions(r, "\"loopback\"")) << r;
  }
  EXPECT_EQ(refusal("127.0.0.1"), "127.0.0.1 is a loopback address (refused unless the config allows \"loopback\")");
}

TEST(AddressGuard, UnspecifiedCountsAsLoopback) {
  for (const char* ip : {"0.0.0.0", "0.1.2.3", "::"}) {
    EXPECT_TRUE(mentions(refusal(ip), "loopback")) << ip;
    EXPECT_EQ(refusal(ip, {.allow_loopback = true}), "") << ip;
  }
}

TEST(AddressGuard, LinkLocal) {
  for (const char* ip : {"169.254.0.1", "169.254.255.255", "169.254.169.253", "fe80::1", "febf::1",
                         "fe80::1ff:fe23:4567:890a"}) {
    const std::string r = refusal(ip);
    EXPECT_TRUE(mentions(r, "is a link-local address")) << ip << ": " << r;
    EXPECT_TRUE(mentions(r, ip)) << r;
    EXPECT_EQ(refusal(ip, {.allow_link_local = true}), "") << ip;
  }
  EXPECT_EQ(refusal("fec0::1"), "");   // just past fe80::/10
}

TEST(AddressGuard, Metadata) {
  for (const char* ip : {"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2",
                         "169.254.170.23", "fd00:ec2::23"}) {
    const std::string r = refusal(ip);
    EXPECT_TRUE(mentions(r, "is a cloud metadata address")) << ip << ": " << r;
    EXPECT_TRUE(mentions(r, ip)) << r;
    // Allowing link-local (or everything else) does not allow metadata.
    EXPECT_NE(refusal(ip, {.allow_loopback = true, .allow_link_local = true}), "") << ip;
    EXPECT_EQ(refusal(ip, {.allow_metadata = true}), "") << ip;
  }
  EXPECT_EQ(refusal("169.254.169.254"),
            "169.254.169.254 is a cloud metadata address (refused unless the config allows \"metadata\")");
}

TEST(AddressGuard, Ipv6FormsOfLoopback) {
  for (const char* ip : {"::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1", "::ffff:0:127.0.0.1",
                         "::ffff:7f00:1", "64:ff9b::7f00:1", "::ffff:127.9.9.9", "::ffff:0.0.0.0"}) {
    const std::string r = refusal(ip);
    EXPECT_TRUE(mentions(r, "is a loopback address")) << ip << ": " << r;
    EXPECT_EQ(refusal(ip, {.allow_loopback = true}), "") << ip;
  }
  // The message names the IPv4 address carried.
  EXPECT_TRUE(mentions(refusal("64:ff9b::7f00:1"), "(IPv4 127.0.0.1)")) << refusal("64:ff9b::7f00:1");
}

TEST(AddressGuard, Ipv6FormsOfMetadata) {
  for (const char* ip : {"::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::169.254.169.254",
                         "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe", "::ffff:0:169.254.169.254"}) {
    const std::string r = refusal(ip);
    EXPECT_TRUE(mentions(r, "is a cloud metadata address")) << ip << ": " << r;
    EXPECT_TRUE(mentions(r, "169.254.169.254")) << r;
    EXPECT_NE(refusal(ip, {.allow_link_local = true}), "") << ip;
    EXPECT_EQ(refusal(ip, {.allow_metadata = true}), "") << ip;
  }
  EXPECT_TRUE(mentions(refusal("::ffff:169.254.1.1"), "link-local"));
}

TEST(AddressGuard, FlagsAreIndependent) {
  const AddressPolicy loop{.allow_loopback = true};
  EXPECT_EQ(refusal("127.0.0.1", loop), "");
  EXPECT_NE(refusal("169.254.0.1", loop), "");
  EXPECT_NE(refusal("169.254.169.254", loop), "");
  const AddressPolicy meta{.allow_metadata = true};
  EXPECT_NE(refusal("127.0.0.1", meta), "");
  EXPECT_NE(refusal("169.254.0.1", meta), "");
  EXPECT_NE(refusal("fe80::1", meta), "");
  const AddressPolicy all{true, true, true};
  for (const char* ip : {"127.0.0.1", "::1", "0.0.0.0", "169.254.0.1", "fe80::1", "169.254.169.254",
                         "fd00:ec2::254"}) {
    EXPECT_EQ(refusal(ip, all), "") << ip;
  }
}

TEST(AddressGuard, NonIpAndShortAddressesRefused) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_NE(address_refusal(reinterpret_cast<const sockaddr*>(&un), sizeof un, {true, true, true}), "");
  EXPECT_NE(address_refusal(nullptr, 0, {true, true, true}), "");
  sockaddr_storage ss = test::inet_addr_of(AF_INET, "8.8.8.8", 443);
  EXPECT_NE(address_refusal(reinterpret_cast<const sockaddr*>(&ss), 4, {}), "");   // truncated
}

}  // namespace
}  // namespace kz::mcp
