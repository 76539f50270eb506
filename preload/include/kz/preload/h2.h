// HTTP/2 (RFC 9113) through blind mode, without downgrading: the connection-level
// engine that the outbound and inbound drivers (outbound.h, inbound.h) hand an h2
// connection to, in the shim and in the fallback proxy alike.
//
// A connection is h2 when its first write is the client connection preface
// ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); outbound_write then allocates an H2Conn in the
// connection's ConnState (DONTDUMP scratch memory, about 1 MiB of address space, touched
// as used) and from then on every write and every read of the connection goes through it:
//
// Outbound (client -> server), frame by frame across any write boundaries:
//   - every header block (HEADERS or PUSH_PROMISE + CONTINUATION) is reassembled and
//     decoded with a mirror of the client's HPACK encoder table; tokens in field values
//     (whatever their coding: Huffman, indexed from the dynamic table) are swapped per
//     stream under the HTTP/1.1 rules (`:method`, `:path` of the stream, `:authority`
//     as its Host); the block is then RE-ENCODED (kz/wire/hpack.h: static references and
//     literals without indexing only) and split into HEADERS + CONTINUATION of at most
//     16384 bytes. The server's decoder table thus stays empty, identical to the
//     encoder's view, whatever was swapped and at any length.
//   - `authorization: Basic base64(user:password)` is decoded, swapped and re-encoded;
//     a request signed with AWS SigV4 by a key kz holds is re-signed by the broker (its
//     signature replaced in the re-encoded block) or its stream refused before its
//     HEADERS go out (the broker audits why).
//   - DATA payloads (padding excluded) are swapped in place when the value has the
//     token's length; otherwise the stream is refused (below).
//   - SETTINGS_HEADER_TABLE_SIZE above 4096 and SETTINGS_MAX_FRAME_SIZE above 16384 are
//     lowered to those values (same length), in both directions: the tables the shim
//     mirrors and the frames it holds stay bounded.
//   - everything else passes unchanged, except frames of refused streams (dropped).
// Inbound (server -> client): every header block is decoded with a mirror of the
// server's encoder table, values that are a swapped secret are redacted (inbound.h),
// and the block is re-encoded the same way; DATA payloads are redacted with the last
// (longest value - 1) bytes of each stream held back for its next DATA frame, so a
// value split across frames is seen whole (DATA in total keeps its length).
// A request that is malformed (RFC 9113 8.2.1/8.2.2/8.3) is never swapped on; DATA that
// goes past its content-length (or ends short) refuses the stream. A swap that arms
// OAuth sealing (ConnState::seal_secret) refuses its stream: h2 answers are not sealed.
//
// Refusal (a value of another length in DATA, a content-coded response on a connection
// that carries a value): the stream's later frames are dropped both ways, RST_STREAM
// (CANCEL) goes to the server when it had the stream's HEADERS, and an RST_STREAM
// (CANCEL) plus a WINDOW_UPDATE for the dropped DATA bytes are injected toward the
// client at a frame boundary of the read side. A PING to the server makes sure a
// client that polls its socket wakes to read them (its ACK is swallowed). Nothing half
// swapped is ever sent. Other streams are not affected. A connection whose framing
// cannot be followed (a malformed header block, a frame over 16384 bytes) fails every
// later write and read.
//
// All functions are called with the ConnState's lock held (the drivers take it).
// h2_read's caller also holds the ConnState's read_mu: h2_read lets go of the lock (not
// of read_mu) while the library read waits, so other threads write meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/preload/conn_table.h"
#include "kz/preload/inbound.h"
#include "kz/preload/outbound.h"

namespace kz::preload {

inline constexpr char kH2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr std::size_t kH2PrefaceLen = sizeof(kH2Preface) - 1;

// p[0, n) starts with the whole client connection preface.
bool h2_is_preface(const char* p, std::size_t n);

// Allocates a zeroed engine (scratch memory); nullptr when out of memory.
H2Conn* h2_conn_new();
// Wipes and frees it. Accepts nullptr.
void h2_conn_free(H2Conn* h);

// ---- Outbound: the client's bytes, from the preface on ----
// Takes all of buf[0, len): complete frames are rewritten and sent with w.write_all,
// an incomplete frame is held for the next write. Failed: write_all failed, or the
// connection's framing is lost (errno EPROTO when write_all did not set one).
WriteOutcome h2_write(ConnState* st, const char* buf, std::size_t len, const BrokerOps& b, const WriteOps& w);

// ---- Inbound: the server's bytes ----
// The shim's read (see inbound_read): hands out rewritten bytes, reading from the
// library as needed.
InboundRead h2_read(ConnState* st, unsigned char* out, std::size_t cap, bool peek, const BrokerOps& b,
                    const ReadOps& r, std::size_t* got, long* lib);
// The proxy's side (inbound_push / inbound_take): push what fits of p[0, n) (returns the
// bytes taken; *failed when the framing is lost), take final bytes. A push parses only
// while the output has room for a frame's worst case: after taking everything, push
// again (n may be 0) so frames left in the input are parsed.
std::size_t h2_push(ConnState* st, const unsigned char* p, std::size_t n, const BrokerOps& b, bool* failed);
std::size_t h2_take(ConnState* st, unsigned char* out, std::size_t cap, bool peek);
// Sends the frames the read side owes the server (RST_STREAM of refused streams, credit
// for DATA it dropped) now, between the client's writes: a client that only reads
// would otherwise stall the server's window. false: write_all failed.
bool h2_flush(ConnState* st, const WriteOps& w);

// Bytes ready for the client (SSL_pending).
std::size_t h2_pending(const ConnState* st);

// Counters for tests and `kz doctor`-style diagnostics.
struct H2Stats {
  std::uint64_t blocks_out = 0, blocks_in = 0;   // header blocks re-encoded
  std::uint64_t swapped = 0, reported = 0, redacted = 0;
  std::uint64_t refused_streams = 0;
  std::uint64_t resign_refused = 0;   // SigV4 streams of a key kz holds that were refused
  bool broken = false;
};
H2Stats h2_stats(const ConnState* st);

}  // namespace kz::preload
