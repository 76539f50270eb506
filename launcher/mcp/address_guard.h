// The fetch tool's address guard: which destination addresses kz refuses to connect to
// on the agent's behalf. It judges the address libcurl is about to connect to (after DNS
// resolution), so a public name that resolves to 127.0.0.1 or 169.254.169.254 is caught.
#pragma once

#include <sys/socket.h>

#include <string>

namespace kz::mcp {

// Which of the normally refused address classes a configuration allows.
struct AddressPolicy {
  bool allow_loopback = false;     // 127.0.0.0/8, ::1 (tests)
  bool allow_link_local = false;   // 169.254.0.0/16, fe80::/10 (metadata excepted)
  bool allow_metadata = false;     // 169.254.169.254, fd00:ec2::254, and their mapped forms
};

// "" when connecting to `sa` is allowed, else a sentence saying why not, naming the
// address and its class ("169.254.169.254 is a cloud metadata address"). IPv4-mapped
// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) IPv6 forms are
// judged as the IPv4 address they carry. The unspecified addresses (0.0.0.0/8, ::)
// count as loopback (they reach the local host).
//
// Metadata addresses: 169.254.169.254 (AWS, GCP, Azure, OCI, ...), fd00:ec2::254 (AWS
// IPv6), 169.254.170.2 and 169.254.170.23 / fd00:ec2::23 (AWS ECS task and EKS pod
// credentials), 100.100.100.200 (Alibaba). They are refused unless allow_metadata, even
// when link-local addresses are allowed. Anything that is not AF_INET/AF_INET6 is refused.
std::string address_refusal(const sockaddr* sa, socklen_t len, const AddressPolicy& p);

}  // namespace kz::mcp
