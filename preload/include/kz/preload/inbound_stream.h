// The inbound side of one connection that carries a value: the bytes read from the TLS
// library that the program has not been handed yet, and where the HTTP/1.1 response
// framing stands. Plain data in fixed buffers (it lives inside ConnState, in DONTDUMP
// scratch memory): the read path allocates nothing.
//
// Why a stream and not a scan of each read: a value can straddle two reads (a server
// that flushes mid-value) or two chunks of a chunked body (the chunk-size line sits
// between its halves). So the stream scans the response's data bytes (the head and the
// body, never the chunk-size lines) as one sequence and hands the program only bytes no
// value can still start in: it holds back the last (longest form - 1) data bytes until
// more arrive or the message ends (Content-Length reached, last chunk, end of stream).
// A message boundary releases everything, so a response is never held up once it is
// complete. Each response is framed as the answer to its own request (ConnState's
// request FIFO: a HEAD's answer has no body). Bytes of another protocol (after a 101
// upgrade or a CONNECT's 2xx) are scanned read by read and never held: the program may
// wait for them. A response the stream cannot follow fails the read: scanned read by
// read, a value split across reads would pass.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kz::preload {

// One TLS record's plaintext (16 KiB, the most one read returns) plus the longest tail
// held back (wire::kMaxFormLen - 1).
inline constexpr std::size_t kInboundCap = 16384 + 4096;
// Data runs in the buffer (chunked bodies interleave data and chunk-size lines).
inline constexpr std::size_t kInboundSegments = 512;

enum class InPhase : std::uint8_t {
  Head,          // reading a response head (from msg_start)
  Length,        // a body of `remaining` bytes
  ChunkSize,     // a chunk-size line (hex digits, optional extensions, CRLF)
  ChunkData,     // `remaining` data bytes of a chunk
  ChunkEnd,      // the CRLF after a chunk's data
  Trailers,      // trailer lines after the last chunk, up to an empty line
  UntilClose,    // a body that ends when the connection does
  Opaque,        // another protocol after a switch: scanned per read, never held
};

struct InboundStream {
  unsigned char buf[kInboundCap];
  unsigned char view[kInboundCap];      // the data bytes of [ready, end) in order, for the scan
  std::uint32_t seg_from[kInboundSegments], seg_to[kInboundSegments];
  std::uint32_t nsegs = 0;
  std::uint32_t len = 0;        // bytes in buf
  std::uint32_t ready = 0;      // [0, ready) are final: the program may have them
  std::uint32_t parsed = 0;     // [0, parsed) went through the framing parser
  std::uint32_t msg_start = 0;  // Head: where the head starts
  std::uint64_t remaining = 0;  // Length / ChunkData
  std::uint64_t chunk_size = 0; // ChunkSize: the digits so far
  std::uint32_t line_len = 0;   // ChunkSize / Trailers: bytes of the current line (CR excluded)
  bool in_ext = false;          // ChunkSize: past ';' (an extension)
  bool digits = false;          // ChunkSize: saw a hex digit
  InPhase phase = InPhase::Head;
  bool failed = false;          // a content-coded response, lost framing: every read fails (EPROTO)
};

}  // namespace kz::preload
