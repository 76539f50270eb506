// ALPN offer filtering. The shim swaps in HTTP/1.1 and, through its HTTP/2 engine (h2.h),
// in h2; with `[blind] http2 = false` (KZ_HTTP2=0) "h2" is removed from the client's
// offer and the server falls back to HTTP/1.1. An offer left empty becomes "http/1.1".
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
// swap on it. h2_engine: the connection's bytes go through the HTTP/2 engine (its first
// write was the h2 preface); then only "h2" does. Else none (HTTP/1.1 by default) or
// "http/1.1": h2 without the engine, h3, anything else is not what the shim parses (an
// agent can set ALPN through the library's own symbol, past the filter above).
bool alpn_allows_swap(const unsigned char* p, std::size_t n, bool h2_engine);

}  // namespace kz::preload
