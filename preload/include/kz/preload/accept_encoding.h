// A request that carries a value asks for an uncompressed response. Inbound redaction
// (inbound.h) finds a value a server echoes back only in bytes it can read; a gzip,
// deflate or br body could carry it past the scan. So the head of a request the shim
// swapped a value into gets `Accept-Encoding: identity`, and a response that arrives
// content-coded anyway fails the read (inbound.cpp).
//
// The rewrite keeps the head's length (the write's framing is already decided): a value of
// 8 bytes or more becomes "identity" padded with spaces (optional whitespace that
// servers strip); a shorter one ("gzip", "br") has its header renamed to one no server
// reads, and without Accept-Encoding servers send the body as it is.
#pragma once

#include <cstddef>

namespace kz::preload {

// The name a short Accept-Encoding header is renamed to (as long as "Accept-Encoding").
inline constexpr char kDroppedAcceptEncoding[] = "X-KZ-Dropped-AE";

// Rewrites every Accept-Encoding header in the request head at the start of [p, p+n)
// (up to its CRLFCRLF) in place. Returns the number of headers changed.
std::size_t force_identity_encoding(char* p, std::size_t n);

}  // namespace kz::preload
