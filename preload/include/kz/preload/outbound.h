// The outbound rewrite (pure, testable with fake callbacks) and the per-connection
// drivers that the TLS hooks call.
//
// rewrite_outbound: finds tokens (and Basic credentials) in one buffer, asks the broker
// through BrokerOps, and produces the bytes to send: values in place of tokens, HTTP
// framing corrected when a value is shorter than its token, refused tokens unchanged.
//
// outbound_write: the connection-level logic around it. Fast path: no token prefix, no
// trailing prefix fragment, no request head, no Basic header, nothing held → PassThrough
// (the hook calls the real function with the caller's own buffer). Else it copies the
// caller's buffer once (after a held token fragment / held request), and parses, asks,
// rewrites and writes only that copy with WriteOps.write_all; the hook then reports the
// caller's full length. The caller's buffer is never read again after the copy: another
// thread may change it during the call, and the bytes checked must be the bytes sent.
#pragma once

#include <cstddef>

#include "kz/preload/conn_table.h"
#include "kz/preload/http_rewrite.h"
#include "kz/wire/protocol.h"

namespace kz::preload {

// The broker as the rewrite sees it. Implemented by SwapClient (swap_client.h) in the shim
// and the fallback proxy, and by fakes in the tests. Anything but Allow/Incomplete (including "broker unreachable")
// leaves the token unchanged.
struct BrokerOps {
  void* ctx = nullptr;
  // Allow: the value is copied to value_out (at most cap bytes) and *value_len set.
  // Incomplete: *token_len = the full length of the token that tok begins.
  wire::Decision (*swap)(void* ctx, ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                         std::size_t cap, std::size_t* value_len, std::size_t* token_len) = nullptr;
  // A token that goes out unchanged where it could not be swapped; the broker audits it.
  void (*report)(void* ctx, ConnState* st, const char* tok, std::size_t len) = nullptr;
  // Inbound candidate p[0, len) in wire::ValueForm `form`: on Allow the callee overwrites
  // p with the replacement (the token in the same form, the same length).
  bool (*redact)(void* ctx, ConnState* st, unsigned char* p, std::size_t len, std::uint32_t form) = nullptr;
  // A content-coded response (Content-Encoding `coding`) arrived on a connection that
  // carries a value; the read fails. The broker audits it.
  void (*report_coded)(void* ctx, ConnState* st, const char* coding, std::size_t len) = nullptr;
  // The connection is going away: report the uses of its grants not yet reported.
  void (*report_grant_uses)(void* ctx, ConnState* st) = nullptr;
  // Optional: the calls that follow may ask the broker; gather what it needs to know
  // about the connection now (SNI, peer; the shim may finish a handshake), before the
  // driver locks the connection's state. st: the connection's state, if it has one.
  void (*prepare)(void* ctx, const ConnState* st) = nullptr;
  // Optional: the connection's next library read or write would start a TLS handshake
  // (an object whose handshake was left to SSL_write, or one cleared past the hooks).
  // OpenSSL starts every first handshake with SSL_clear, through the PLT, and the shim's
  // SSL_clear hook takes the connection's lock: so a driver about to write or read
  // through the library under that lock calls prepare first, which completes the
  // handshake with no lock held (settle_handshake).
  bool (*handshake_unstarted)(void* ctx) = nullptr;
  // Optional: an AWS SigV4 request to re-sign (sigv4_resign.h, wire::Op::Sign): data =
  // the body's hash and the head. Allow: sig_out[0, 64) = the signature, *at = where in
  // the head it goes. Anything else: the request keeps its own signature.
  wire::Decision (*sign)(void* ctx, ConnState* st, const char* data, std::size_t n, std::uint32_t form,
                         char* sig_out, std::size_t* at) = nullptr;
  // Optional: a token in a token endpoint's response, p[0, len) (wire::Op::Seal, for the
  // client secret st->seal_secret): on Allow the callee overwrites p with a new token of
  // the same length and returns true. false: the response must not reach the program.
  bool (*seal)(void* ctx, ConnState* st, unsigned char* p, std::size_t len) = nullptr;
};

struct MessageTracker;
struct TrackResult;

// Which request each byte of the rewritten buffer belongs to (message_tracker.h): the
// tracker's result over that buffer, and the state it started from (whose request a
// body continued from an earlier write belongs to).
struct RequestLookup {
  const TrackResult* tr = nullptr;
  const MessageTracker* from = nullptr;
};

struct OutboundOptions {
  bool fixup_lengths = false;      // KZ_FIXUP_LENGTHS=1
  bool in_chunked_body = false;    // from the connection state: the buffer starts a chunk
  bool allow_hold = true;          // may ask to hold a request whose body is incomplete
  bool allow_carry = true;         // may hold back a token the buffer ends inside
  std::size_t hold_limit = kHoldLimit;
  // Set by the driver: each token is decided against its own request, and one in no
  // identifiable request is reported, never swapped. Null: the ConnState's request
  // fields as they are (the pure rewrite's tests).
  const RequestLookup* requests = nullptr;
};

struct OutboundResult {
  std::size_t out_len = 0;         // bytes of out to send (when changed) / of in (when not)
  std::size_t carry_len = 0;       // trailing input bytes held back (an incomplete token)
  bool hold_request = false;       // hold all input: head with Content-Length, body incomplete
  bool changed = false;            // out holds the bytes to send; else send in[0, out_len)
  std::size_t swapped = 0, reported = 0;
  // The buffer ends at a chunk boundary of a chunked body (head included or continued):
  // the next write on the connection starts a chunk.
  bool chunked_next = false;
};

// Swaps every token of a complete text [dec, dec+dn) (a decoded Basic credential, an
// HTTP/2 field value) into `swapped` (room for dn bytes: values are never longer than
// their tokens), each token asked as complete. Returns the new length, or 0 when nothing
// was swapped; *nswapped counts the swaps.
std::size_t swap_inside(const char* dec, std::size_t dn, char* swapped, const BrokerOps& b, ConnState* st,
                        std::size_t* nswapped);

// Points st's request fields (what the broker is asked about) at the request the byte
// at `pos` of `in` belongs to. false when it belongs to none (unidentified). Without
// tracking (opt.requests null) st's fields are used as they are.
bool bind_request(const OutboundOptions& opt, ConnState* st, const char* in, std::size_t pos);

// Scratch the rewrite needs: out >= n bytes, work >= outbound_work_size(n) bytes.
inline std::size_t outbound_work_size(std::size_t n) { return 3 * n + 64; }

OutboundResult rewrite_outbound(const char* in, std::size_t n, const OutboundOptions& opt, const BrokerOps& b,
                                ConnState* st, char* out, char* work);

// How the driver sends bytes: write ALL of [p, p+n) with the real TLS write (retrying
// want-read/want-write and partial writes). false on a hard error, which the hook keeps
// in its ctx and returns to its caller.
struct WriteOps {
  void* ctx = nullptr;
  bool (*write_all)(void* ctx, const char* p, std::size_t n) = nullptr;
};

enum class WriteOutcome { PassThrough, Consumed, Failed };

// `key` is the TLS object. Failed: write_all failed (the hook has the error in its ctx).
WriteOutcome outbound_write(ConnTable& t, const void* key, const char* buf, std::size_t len, bool fixup_lengths,
                            const BrokerOps& b, const WriteOps& w);

// Before a read or shutdown: send what is held for this connection, fail closed (held
// token fragment unchanged and reported; a held request rewritten without waiting for
// the rest of its body).
void outbound_flush(ConnTable& t, const void* key, const BrokerOps& b, const WriteOps& w);

// The connection is going away: report a held fragment, drop everything, wipe.
void conn_drop(ConnTable& t, const void* key, const BrokerOps& b);

// A write that goes to the library without the shim, on a connection the shim stops
// following from here on (its requests Lost: no swap, every token reported, as
// [buf, buf+len)'s are now). For an object whose handshake only the program can move (no
// socket under it): the shim may not wait for that handshake, nor let the library run it
// under the state's lock. Creates the state when there is none.
void conn_unfollow(ConnTable& t, const void* key, const char* buf, std::size_t len, const BrokerOps& b);
// key's connection was unfollowed (and not dropped since).
bool conn_unfollowed(ConnTable& t, const void* key);

// Before a driver locks key's state st to write or read through the library: when the
// object has not started its handshake (BrokerOps::handshake_unstarted), b.prepare
// completes it now, with no lock held, and key's state is looked up again (the
// handshake's own SSL_clear drops it). Returns the state to use: st, another, or nullptr.
ConnState* settle_handshake(ConnTable& t, const void* key, const BrokerOps& b, ConnState* st);

}  // namespace kz::preload
