// HTTP/1.x framing for the outbound rewrite. When a value is shorter than its token
// (only possible with KZ_FIXUP_LENGTHS=1), the bytes after it move, so the framing that
// counts them must change with them: Content-Length of a request whose body is in the
// buffer, or the chunk-size line of the chunk that holds the token. Where the framing is
// not in the buffer (head already sent), the edit is dropped: the token goes out
// unchanged and is reported, so a wrong Content-Length is never sent.
// Pure functions over caller memory; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::preload {

struct Span {
  std::size_t pos = 0, len = 0;
};

struct HttpHead {
  bool is_request = false;       // the buffer starts with "METHOD SP target SP HTTP/1.x CRLF"
  bool complete = false;         // and its terminating CRLFCRLF is in the buffer
  std::size_t head_end = 0;      // offset just past CRLFCRLF (when complete)
  Span method, target;
  bool has_content_length = false;
  std::uint64_t content_length = 0;
  Span cl_value;                 // the digits of the Content-Length header
  bool chunked = false;          // Transfer-Encoding: chunked
  bool expect_continue = false;  // Expect: 100-continue
  Span host;                     // the value of the (last) Host header
  unsigned host_count = 0;       // how many Host headers
};

// Cheap check for the fast path (a few byte compares): does p start like a request line?
bool looks_like_request_start(const char* p, std::size_t n);

// Parses the request line and, when complete, the head. Headers are matched
// case-insensitively; a malformed or duplicated Content-Length is treated as absent.
HttpHead parse_head(const char* p, std::size_t n);

// One replacement: in[pos, pos+len) becomes repl[0, repl_len) (repl_len <= len).
struct Edit {
  std::size_t pos = 0, len = 0;
  const char* repl = nullptr;
  std::size_t repl_len = 0;
  bool dropped = false;          // set by apply_edits when the framing cannot follow
};

struct FrameContext {
  bool fixup_lengths = false;    // when false, length-changing edits are all dropped
  bool in_chunked_body = false;  // the buffer continues a chunked body of an earlier head
};

struct ApplyResult {
  std::size_t out_len = 0;
  std::size_t applied = 0;       // edits applied
  std::size_t dropped = 0;       // edits dropped (reported by the caller)
};

// Applies `edits` (sorted by pos, non-overlapping) to [in, in+n) into out (capacity >= n;
// the output is never longer than the input). Fixes Content-Length / chunk sizes for
// length-changing edits; drops the ones whose framing is not in the buffer.
ApplyResult apply_edits(const char* in, std::size_t n, Edit* edits, std::size_t k, const FrameContext& ctx,
                        char* out);

// Where a chunked body stands at the end of [p+start, p+n):
//   Boundary    every chunk in the buffer is complete (the next byte starts a chunk)
//   Incomplete  well-formed so far, but the buffer ends inside a chunk (size line, data,
//               its CRLF, or the trailer section)
//   Ended       the last (0-size) chunk and its trailer section are complete
//   Malformed   not a chunked body we can follow
enum class ChunkedTail { Boundary, Incomplete, Ended, Malformed };
ChunkedTail chunked_tail(const char* p, std::size_t n, std::size_t start);

// Writes v in base 10 / base 16 into out (cap bytes); returns the digit count or 0.
std::size_t format_dec(std::uint64_t v, char* out, std::size_t cap);
std::size_t format_hex(std::uint64_t v, char* out, std::size_t cap);

}  // namespace kz::preload
