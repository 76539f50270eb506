// Inbound redaction: a server that echoes a real value back (an error message quoting
// the Authorization header, a debug endpoint returning the request as base64 or JSON, a
// hex dump) must not hand it to the agent. The broker gives the shim, for each value it
// swapped on a connection, keyed fingerprints of the value in every encoded form
// (kz/wire/value_forms.h; Rabin-Karp, kz/wire/fingerprint.h) and never the value. A
// candidate goes to the broker, which confirms the bytes and answers with the token in
// the same form and length, written over them in place.
//
// On a connection that carries a value, reads go through the connection's
// InboundStream (inbound_stream.h): values that straddle two reads or two chunks are
// caught, and a content-coded response (gzip, deflate, br: compressed bytes a value may
// hide in) fails the read instead of reaching the program.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/preload/outbound.h"

namespace kz::preload {

// Scans p[0, n) for every fingerprint and replaces confirmed hits in place. Returns the
// number of replaced candidates. (No state: a value must lie within the buffer.)
std::size_t redact_buffer(unsigned char* p, std::size_t n, const Fingerprint* fps, std::size_t nfps,
                          const BrokerOps& b, ConnState* st);

// The length of the longest value st's fingerprints describe (0: none).
std::size_t longest_print(const ConnState& st);

// After a read of n bytes into buf on the connection `key`, for a reader that cannot
// hold bytes back: scans that buffer alone.
void inbound_after_read(ConnTable& t, const void* key, void* buf, std::size_t n, const BrokerOps& b);

// ---- The stream (callers hold no lock; these take the connection's) ----

// How the shim reads more from the TLS library: into p (at most cap bytes). > 0: bytes
// read; <= 0: the library's own result (end of stream, want-read, error), which the hook
// returns to its caller as it is.
struct ReadOps {
  void* ctx = nullptr;
  long (*read)(void* ctx, unsigned char* p, std::size_t cap) = nullptr;
  // 0 means the peer closed the stream (not "no bytes now"); GnuTLS and OpenSSL agree.
  // Optional: a result < 0 that ends the stream for good (a fatal error, a close without
  // close_notify), as opposed to "no bytes now": what the stream holds is then final.
  bool (*ended)(void* ctx, long rc) = nullptr;
};

enum class InboundRead {
  PassThrough,   // no stream on this connection: the hook reads as usual
  Delivered,     // *got bytes are in out
  Library,       // the library's result is in *lib: return it as it is
  Failed,        // a content-coded response on a connection that carries a value: EPROTO
};

// The shim's read (SSL_read/SSL_peek/gnutls_record_recv): hands out final bytes of the
// stream, reading from the library as needed. `peek`: leave them in the stream.
InboundRead inbound_read(ConnTable& t, const void* key, unsigned char* out, std::size_t cap, bool peek,
                         const BrokerOps& b, const ReadOps& r, std::size_t* got, long* lib);

// After a read that inbound_read let go to the library (PassThrough) returned n > 0
// bytes in out[0, n) (out holds cap): a read that started before the connection's first
// value went out (another thread wrote it while this one waited in the library) may hold
// its echo. When the connection carries a value (or speaks h2) now, the bytes go through
// its stream (or h2 engine) and the result is as inbound_read's (out is overwritten; a
// peek fails). PassThrough: hand out[0, n) to the program as it is.
InboundRead inbound_after_passthrough(ConnTable& t, const void* key, unsigned char* out, std::size_t n,
                                      std::size_t cap, bool peek, const BrokerOps& b, const ReadOps& r,
                                      std::size_t* got, long* lib);

// Bytes the stream holds that are final (for SSL_pending and friends).
std::size_t inbound_pending(ConnTable& t, const void* key);

// The fallback proxy's side: bytes read from the upstream go in, final bytes come out.
// inbound_push takes what fits of p[0, n) (0 when the connection has no stream: send p as
// is) and sets *failed for a content-coded response; inbound_take copies out and drops
// up to cap final bytes; inbound_finish marks the end of the upstream's stream (every
// byte becomes final).
bool inbound_active(ConnTable& t, const void* key);
std::size_t inbound_push(ConnTable& t, const void* key, const unsigned char* p, std::size_t n, const BrokerOps& b,
                         bool* failed);
std::size_t inbound_take(ConnTable& t, const void* key, unsigned char* out, std::size_t cap);
void inbound_finish(ConnTable& t, const void* key, const BrokerOps& b);

// ---- The pure core, for tests ----
// Appends p[0, n) (n <= room) and advances the stream: framing, scan, release.
// (The stream is st.in; st's fingerprints and request method drive it.)
void stream_feed(ConnState& st, const unsigned char* p, std::size_t n, const BrokerOps& b);
// The end of the stream: everything buffered is scanned and becomes final.
void stream_end(ConnState& st, const BrokerOps& b);
inline std::size_t stream_room(const InboundStream& s) { return kInboundCap - s.len; }
// Copies up to cap final bytes to out; drops them unless peek.
std::size_t stream_take(InboundStream& s, unsigned char* out, std::size_t cap, bool peek);

}  // namespace kz::preload
