// The broker wire protocol between the preload shim (client, inside the agent) and the
// launcher's broker (server). One SOCK_SEQPACKET unix socket per shim process; each
// request and each reply is exactly one fixed-size message, so a short or long read is
// a protocol error, never a partial parse. Both ends are built from this header in the
// same build, but the version byte still guards against a stale shim from another kz.
//
// Environment the launcher gives the agent in blind mode (and the shim re-adds on exec
// when the agent drops it):
//   KZ_BROKER=/path/to/broker.sock     the broker's socket
//   KZ_PRELOAD=/path/to/libkz_preload.so
//   KZ_FIXUP_LENGTHS=1                 set when some token is longer than its secret, so
//                                      the shim must correct Content-Length / chunk sizes
#pragma once

#include <cstddef>
#include <cstdint>

#include "kz/wire/token.h"
#include "kz/wire/value_forms.h"

namespace kz::wire {

inline constexpr std::uint8_t kProtocolVersion = 5;   // 3: the request's Host header, kFlagHostInvalid/kFlagUnidentified; 4: Sign; 5: Hold

inline constexpr const char* kEnvBroker = "KZ_BROKER";
inline constexpr const char* kEnvPreload = "KZ_PRELOAD";
inline constexpr const char* kEnvFixupLengths = "KZ_FIXUP_LENGTHS";
// "0": the shim removes h2 from ALPN offers ([blind] http2 = false); else h2 is offered.
inline constexpr const char* kEnvHttp2 = "KZ_HTTP2";

inline constexpr std::size_t kMaxHost = 256;     // SNI host name or IP literal, no NUL
inline constexpr std::size_t kMaxMethod = 16;
inline constexpr std::size_t kMaxPath = 1024;    // request target (path and query), truncated
inline constexpr std::size_t kMaxPeer = 64;      // "1.2.3.4:443" / "[::1]:443" from connect()
inline constexpr std::size_t kMaxData = kMaxSecretLen;
inline constexpr std::size_t kMaxChain = 32768;  // DER peer certificates, leaf first, concatenated
inline constexpr std::size_t kMaxReason = 160;

enum class Op : std::uint8_t {
  // data = token text (complete, or the start of one when kFlagTokenAtEnd is set).
  // Allow: data = the secret value. Incomplete: token_len = length of the token it begins.
  Swap = 1,
  // data = bytes of the caller's inbound buffer that matched a fingerprint; form = the
  // ValueForm whose fingerprint it matched. Allow: data = same-length replacement (the
  // token in that form, see value_forms.h).
  Redact = 2,
  // A token seen where it cannot be swapped (plain TCP, a token split at its prefix,
  // a request too large to fix up): the broker records the refusal. Reply: Refuse.
  // With uses > 0: the token was swapped `uses` more times on a connection the broker
  // granted reuse for (kReplyReuseOnConnection); the broker records the uses.
  // With kFlagCodedResponse: data = the Content-Encoding of a response that arrived on a
  // connection carrying a value; the shim failed the read (EPROTO). Reply: Refuse.
  Report = 3,
  // An AWS SigV4 request (kz/sigv4.h) that the agent's SDK signed with a token as its
  // secret key. data = the body's SHA-256 in 64 lower-case hex digits (64 '-' when the
  // shim has not got the body), then the request head as it will be sent, up to and
  // including its empty line. form = kSign* facts. Allow: data = the 64-hex signature
  // made with the real key, for the shim to write over the token's (same length). The
  // key itself never leaves the broker.
  Sign = 4,
  // A token endpoint's response on a connection where a client secret with mint_hosts
  // was swapped (kReplySealResponses): data = the value of its access_token,
  // refresh_token or id_token; form = the secret_id of that client secret. Allow: data =
  // a new token of the same length, which the shim writes over the value; the broker
  // keeps the value, bound to the secret's mint_hosts (launcher/secrets/decide_seal.cpp).
  Seal = 5,
};

inline constexpr std::size_t kSignHashLen = 64;
// Sign request facts (Request::form).
inline constexpr std::uint32_t kSignHeadTruncated = 1;   // the head did not fit: data holds its start

enum class Channel : std::uint8_t { OpenSSL = 1, GnuTLS = 2, Plain = 3 };

enum class Decision : std::uint8_t {
  Allow = 1,
  Refuse = 2,       // reason says why; the shim sends the token unchanged
  Incomplete = 3,   // Swap with kFlagTokenAtEnd: data is the start of a known token
  Unknown = 4,      // not a token of this run / no match
  // Swap: the request waits for a person's approval (approve = ..., issue 19 part 5).
  // token_len = the most seconds the wait may last; the final Allow or Refuse for the
  // same request follows on the same connection. Nothing else is sent on it meanwhile.
  Hold = 5,
};
inline constexpr std::uint32_t kMaxHoldSeconds = 86400;

// Request flags.
inline constexpr std::uint8_t kFlagTokenAtEnd = 1;   // the token text reached the end of the write
inline constexpr std::uint8_t kFlagPeerHasChain = 2; // chain[] holds the peer's certificates
// Facts the shim saw on the TLS object at this write that make a swap unsafe; the broker
// refuses (and audits) any Swap that carries one. Checked on every swap, grants included.
inline constexpr std::uint8_t kFlagKeyLog = 4;        // the session's keys can be logged (callback / SSLKEYLOGFILE)
inline constexpr std::uint8_t kFlagNotSocketBio = 8;  // the TLS records go to memory, not a connected socket
inline constexpr std::uint8_t kFlagAlpnNotHttp1 = 16; // negotiated ALPN is neither empty nor http/1.1
inline constexpr std::uint8_t kUnsafeFlags = kFlagKeyLog | kFlagNotSocketBio | kFlagAlpnNotHttp1;
// Report: a content-coded response (gzip, deflate, br...) that inbound redaction cannot
// see into arrived on a connection that carries a value; data = its Content-Encoding.
inline constexpr std::uint8_t kFlagCodedResponse = 32;
// What the shim knows of the request the token belongs to (issue 15, classes 7 and 8).
inline constexpr std::uint8_t kFlagHostInvalid = 64;   // two Host headers, or one that is not printable ASCII
inline constexpr std::uint8_t kFlagUnidentified = 128; // the token's request could not be identified
inline constexpr std::uint8_t kRequestFlags = kFlagHostInvalid | kFlagUnidentified;
// Report's `form`: why the token was not sent. 0: it went out unchanged. kReportH2StreamReset:
// its HTTP/2 stream could not carry the value exactly (a value of another length in DATA)
// and was reset; none of the stream's later bytes were sent.
inline constexpr std::uint32_t kReportH2StreamReset = 1;
// A Swap's and a Sign's `form` bit: the TLS object had not finished its handshake when
// the request was written (the shim could not complete it first), so the chain in the
// request is whatever session the object held, maybe an earlier peer's. The broker
// refuses it, as it does a swap with an unsafe flag (the flags byte is full). A Swap's
// form is 0 or this; a Sign's may also carry kSignHeadTruncated.
inline constexpr std::uint32_t kFormHandshakeUnfinished = 2;

struct Request {
  std::uint8_t version;
  Op op;
  Channel channel;
  std::uint8_t flags;
  std::uint32_t pid;          // the shim's view (threads); the broker trusts SO_PEERCRED
  std::uint32_t uses;         // Report: swaps done under a connection grant (else 0)
  std::uint32_t form;         // Redact: the ValueForm of data (else 0)
  std::uint64_t conn_id;      // the shim's connection id, for correlating audit records
  std::uint16_t host_len, method_len, path_len, peer_len;
  std::uint16_t http_host_len, reserved;
  std::uint32_t data_len, chain_len;
  char host[kMaxHost];        // SNI, else the IP literal of the peer
  char method[kMaxMethod];    // from the request line of the request the token belongs to
  char path[kMaxPath];        // its request target, as sent (origin or absolute form)
  char http_host[kMaxHost];   // its Host header's value (empty: none)
  char peer[kMaxPeer];        // address:port from connect()
  unsigned char data[kMaxData];
  unsigned char chain[kMaxChain];
};

// The fingerprint of one encoded form of a value (Reply::forms).
struct FormPrint {
  std::uint64_t hash;         // fp_hash under Reply::fp_base
  std::uint64_t quick;        // fq_hash under Reply::fq_base (the scan's filter)
  std::uint32_t len;
  std::uint32_t form;         // ValueForm
};

// Reply flags.
// Swap Allow: the shim may swap this same token again on this same TLS connection
// without asking (the secret has no methods/paths to check per request, and the
// connection's peer cannot change: same session keys). The shim counts those uses and
// reports them (Report with uses > 0) when the connection ends, every
// kReuseReportEvery uses, and when the process exits.
inline constexpr std::uint8_t kReplyReuseOnConnection = 1;
inline constexpr std::uint32_t kReuseReportEvery = 256;
// Swap Allow: the secret is a client secret with mint_hosts: the shim seals the access
// tokens in this connection's responses (Op::Seal) and holds each response until it is
// complete to find them.
inline constexpr std::uint8_t kReplySealResponses = 2;

struct Reply {
  std::uint8_t version;
  Op op;
  Decision decision;
  std::uint8_t flags;
  std::uint32_t data_len;
  std::uint32_t token_len;    // Incomplete: full length of the token
  std::uint32_t secret_id;    // Allow: small per-run id of the secret (stable for the run)
  // Swap Allow: fingerprint of the value for inbound redaction (see fingerprint.h), and
  // of each of its other encoded forms (value_forms.h) up to kMaxFormLen bytes.
  std::uint64_t fp_base, fp_hash;
  std::uint32_t fp_len;
  std::uint64_t fq_base, fq_hash;   // the quick filter's base and the value's quick hash
  std::uint32_t nforms;
  FormPrint forms[kValueFormCount];
  std::uint16_t reason_len;
  char reason[kMaxReason];
  unsigned char data[kMaxData];
};

// Strict checks of a received message (size, version, op/enum ranges, every length
// within its field). Both ends call these on everything they receive.
bool request_is_valid(const Request& r, std::size_t received_bytes);
bool reply_is_valid(const Reply& r, std::size_t received_bytes, Op expected_op);

}  // namespace kz::wire
