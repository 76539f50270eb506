// ALPN offer filtering: the shim rewrites HTTP/1.x only (HPACK-compressed HTTP/2 headers
// cannot be rewritten safely in a TLS write), so "h2" is removed from the client's offer
// and the server falls back to HTTP/1.1. An offer left empty becomes "http/1.1".
#pragma once

#include <cstddef>

namespace kz::preload {

// Wire format (OpenSSL): a sequence of <len byte><protocol>. Writes the filtered list to
// out (capacity >= n, and >= 9 for the "http/1.1" fallback) and returns its length.
// Returns n and copies unchanged when the input is malformed.
std::size_t alpn_filter_wire(const unsigned char* in, std::size_t n, unsigned char* out, std::size_t cap);

// True when a protocol name (GnuTLS datum) is HTTP/2 ("h2", or the old "h2c"/draft names).
bool alpn_is_h2(const unsigned char* p, std::size_t n);

// The protocol a connection negotiated (p[0, n), not length-prefixed) lets the shim
// swap: none (HTTP/1.1 by default) or "http/1.1". h2, h3, anything else: no swap, since
// the shim parses only HTTP/1.1 (an agent can set ALPN through the library's own symbol,
// past the filter above).
bool alpn_allows_swap(const unsigned char* p, std::size_t n);

}  // namespace kz::preload
