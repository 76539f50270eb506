// Incremental look at the first bytes a client sends to the fallback proxy: is this a
// TLS ClientHello, is it complete yet, and which server name and ALPN protocols does it
// carry. Pure (no I/O, no allocation beyond the result's strings), so the proxy can call
// it again after every read with everything read so far.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kz {

// A ClientHello is normally a few hundred bytes (up to ~2 KiB with post-quantum key
// shares); anything that needs more than this before it is complete is not parsed.
inline constexpr std::size_t kMaxClientHello = 16384;

enum class HelloStatus {
  NeedMore,   // a TLS handshake record so far; read more
  NotTls,     // the bytes are not a TLS handshake (plain TCP)
  Complete,   // a whole ClientHello: sni/alpn are filled
  Malformed,  // TLS records, but the ClientHello does not parse or exceeds kMaxClientHello
};

struct ClientHello {
  HelloStatus status = HelloStatus::NeedMore;
  std::string sni;                  // host_name from server_name ("" when absent)
  bool sni_valid = true;            // false: a server_name that is not a plausible DNS name
  std::vector<std::string> alpn;    // protocols offered, in the client's order
  bool offers(const char* proto) const;
};

// Parses [p, p+n), the first n bytes the client sent.
ClientHello parse_client_hello(const unsigned char* p, std::size_t n);

}  // namespace kz
