#include "mcp/address_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

namespace kz::mcp {

namespace {

enum class Class { Allowed, Loopback, LinkLocal, Metadata };

constexpr std::uint32_t ipv4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// `a` in host byte order.
Class classify_v4(std::uint32_t a) {
  switch (a) {
    case ipv4(169, 254, 169, 254):   // AWS, GCP, Azure, OCI, DigitalOcean instance metadata
    case ipv4(169, 254, 170, 2):     // AWS ECS task credentials
    case ipv4(169, 254, 170, 23):    // AWS EKS pod identity credentials
    case ipv4(100, 100, 100, 200):   // Alibaba Cloud instance metadata
      return Class::Metadata;
    default:
      break;
  }
  // 0.0.0.0/8: connecting to 0.0.0.0 reaches the local host on Linux.
  if ((a >> 24) == 127 || (a >> 24) == 0) return Class::Loopback;
  if ((a >> 16) == ((169u << 8) | 254u)) return Class::LinkLocal;
  return Class::Allowed;
}

using V6 = std::array<std::uint8_t, 16>;

bool has_prefix(const V6& a, std::initializer_list<std::uint8_t> prefix) {
  std::size_t i = 0;
  for (std::uint8_t b : prefix) {
    if (a[i++] != b) return false;
  }
  return true;
}

// The IPv4 address an IPv6 address stands for, when it is one of the forms that a
// kernel or a NAT64 gateway turns into an IPv4 connection.
std::optional<std::uint32_t> embedded_v4(const V6& a) {
  const std::uint32_t low = (std::uint32_t{a[12]} << 24) | (std::uint32_t{a[13]} << 16) |
                            (std::uint32_t{a[14]} << 8) | std::uint32_t{a[15]};
  // ::ffff:a.b.c.d (mapped; a dual-stack socket connects to a.b.c.d).
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})) return low;
  // ::ffff:0:a.b.c.d (SIIT translated).
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0})) return low;
  // 64:ff9b::a.b.c.d (the well-known NAT64 prefix, RFC 6052).
  if (has_prefix(a, {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) return low;
  // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1, which are IPv6's own.
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) && low > 1) return low;
  return std::nullopt;
}

Class classify_v6(const V6& a) {
  if (auto v4 = embedded_v4(a)) return classify_v4(*v4);
  static constexpr V6 kAwsImds = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  static constexpr V6 kAwsPodIdentity = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23};
  if (a == kAwsImds || a == kAwsPodIdentity) return Class::Metadata;
  // :: (unspecified) and ::1; embedded_v4 left exactly these two in the ::/96 block.
  if (has_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})) return Class::Loopback;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return Class::LinkLocal;   // fe80::/10
  return Class::Allowed;
}

bool allowed(Class c, const AddressPolicy& p);

// "" when the policy allows class `c`, else the refusal naming `addr`.
std::string sentence(const std::string& addr, Class c, const AddressPolicy& p) {
  if (allowed(c, p)) return "";
  switch (c) {
    case Class::Loopback:
      return addr + " is a loopback address (refused unless the config allows \"loopback\")";
    case Class::LinkLocal:
      return addr + " is a link-local address (refused unless the config allows \"link-local\")";
    case Class::Metadata:
      return addr + " is a cloud metadata address (refused unless the config allows \"metadata\")";
    case Class::Allowed:
      break;
  }
  return "";
}

bool allowed(Class c, const AddressPolicy& p) {
  switch (c) {
    case Class::Allowed: return true;
    case Class::Loopback: return p.allow_loopback;
    case Class::LinkLocal: return p.allow_link_local;
    case Class::Metadata: return p.allow_metadata;
  }
  return false;
}

}  // namespace

std::string address_refusal(const sockaddr* sa, socklen_t len, const AddressPolicy& p) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return "not an IP address";
  char text[INET6_ADDRSTRLEN] = {0};
  Class c = Class::Allowed;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof in);   // `sa` may not be aligned for sockaddr_in
    c = classify_v4(ntohl(in.sin_addr.s_addr));
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof in6);
    V6 a;
    std::memcpy(a.data(), in6.sin6_addr.s6_addr, a.size());
    c = classify_v6(a);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    if (auto v4 = embedded_v4(a); v4 && c != Class::Allowed) {
      // Name the IPv4 address too: "64:ff9b::a9fe:a9fe" alone does not say why.
      in_addr carried{htonl(*v4)};
      char text4[INET_ADDRSTRLEN] = {0};
      inet_ntop(AF_INET, &carried, text4, sizeof text4);
      return sentence(std::string(text) + " (IPv4 " + text4 + ")", c, p);
    }
  } else {
    return "not an IP address (address family " + std::to_string(sa->sa_family) + ")";
  }
  return sentence(text, c, p);
}

}  // namespace kz::mcp
