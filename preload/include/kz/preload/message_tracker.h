// HTTP/1.1 request boundaries on one connection (issue 15, class 8: request smuggling).
// A token is decided against the request it belongs to: its own method, target and
// Host. Which request that is depends on everything written before it on the
// connection: pipelined requests in one write, a body whose Content-Length or chunks
// end mid-write, empty lines before a request line. The tracker follows the stream
// written so far and maps each byte of a new write to its request, or to none
// ("unidentified": a token there is never swapped).
//
// It is strict where servers differ: anything a server could read as another boundary
// than the tracker does (bare LF or CR, whitespace in a header name, two Content-Length
// or Transfer-Encoding headers, both, a transfer coding other than "chunked", a
// malformed chunk) makes the connection Lost for good: every later token on it is
// unidentified. So are CONNECT and Upgrade (the stream stops being HTTP/1.1), and the
// body of an Expect: 100-continue request (the server may answer before reading it and
// then read the next bytes as a new request).
//
// Pure and allocation-free: track() reads a buffer and a state and writes a new state;
// the caller commits the new state only once the bytes it followed are sent.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/preload/http_rewrite.h"
#include "kz/wire/protocol.h"

namespace kz::preload {

// The request whose body continues past the end of the bytes tracked so far.
struct TrackedRequest {
  char method[wire::kMaxMethod];
  char target[wire::kMaxPath];
  char host[wire::kMaxHost];
  std::uint16_t method_len = 0, target_len = 0, host_len = 0;   // target_len 0: longer than the field
  std::uint8_t host_count = 0;
  bool body_identified = true;   // false after Expect: 100-continue
};

struct MessageTracker {
  enum class Phase : std::uint8_t { Head, Body, Chunked, Lost };
  Phase phase = Phase::Head;
  std::uint8_t chunk = 0;          // where in the chunked framing (message_tracker.cpp)
  std::uint8_t digits = 0;         // hex digits of the chunk size so far
  std::uint64_t remaining = 0;     // Body: bytes left; Chunked: data bytes left of this chunk
  TrackedRequest cur;              // Body / Chunked: the request the body belongs to
};

// The bytes [begin, end) of a tracked buffer and the request they belong to.
struct RequestRef {
  enum class Kind : std::uint8_t {
    Unidentified,   // no request (lost framing, an incomplete head, an unsure body)
    InBuffer,       // a head in the buffer: method, target and host are spans of it
    Continued,      // the body of the request in the tracker state tracking started from
  };
  Kind kind = Kind::Unidentified;
  std::size_t begin = 0, end = 0;
  Span method, target, host;
  unsigned host_count = 0;
};

inline constexpr std::size_t kMaxRequestRefs = 32;

struct TrackResult {
  RequestRef refs[kMaxRequestRefs];
  std::size_t nrefs = 0;
  // The buffer ends inside a request head that starts at head_start: its request is not
  // known yet (hold the bytes and track them again with the rest, or give up: Lost).
  bool head_incomplete = false;
  std::size_t head_start = 0;

  // The ref that byte `pos` belongs to; nullptr when none (unidentified).
  const RequestRef* at(std::size_t pos) const;
};

// Follows [p, p+n) from state `from`; `to` gets the state after it (to != &from).
void track(const MessageTracker& from, const char* p, std::size_t n, MessageTracker* to, TrackResult* r);

}  // namespace kz::preload
