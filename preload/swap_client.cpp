#include "kz/preload/swap_client.h"

#include <string.h>

#include <cstring>

#include "kz/preload/peer_identity.h"
#include "kz/wire/http_host.h"

namespace kz::preload {

namespace {

using wire::Decision;
using wire::Op;
using wire::Reply;
using wire::Request;

void copy_field(char* dst, std::uint16_t* dst_len, std::size_t cap, const char* src, std::size_t n) {
  if (n > cap) n = cap;
  if (n > 0) std::memcpy(dst, src, n);
  *dst_len = static_cast<std::uint16_t>(n);
}

// The facts a grant's use report speaks for: those kept in the ConnState when the grant
// was remembered (the TLS object may be gone by now, e.g. at process exit).
void facts_of_state(const ConnFacts& from, const ConnState* st, ConnFacts* out) {
  out->channel = st->channel;
  out->pid = from.pid;
  out->conn_id = from.conn_id;
  out->gathered = true;
  std::memcpy(out->host, st->host, st->host_len);
  out->host_len = st->host_len;
  std::memcpy(out->peer, st->peer, st->peer_len);
  out->peer_len = st->peer_len;
}

Decision call_swap(void* ctx, ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                   std::size_t cap, std::size_t* value_len, std::size_t* token_len) {
  return static_cast<SwapClient*>(ctx)->swap(st, tok, len, at_end, value_out, cap, value_len, token_len);
}
void call_report(void* ctx, ConnState* st, const char* tok, std::size_t len) {
  static_cast<SwapClient*>(ctx)->report(st, tok, len);
}
bool call_redact(void* ctx, ConnState* st, unsigned char* p, std::size_t len, std::uint32_t form) {
  return static_cast<SwapClient*>(ctx)->redact(st, p, len, form);
}
void call_report_coded(void* ctx, ConnState* st, const char* coding, std::size_t len) {
  static_cast<SwapClient*>(ctx)->report_coded(st, coding, len);
}
void call_report_grant_uses(void* ctx, ConnState* st) { static_cast<SwapClient*>(ctx)->report_grant_uses(st); }
void call_prepare(void* ctx, const ConnState* st) { static_cast<SwapClient*>(ctx)->prepare(st); }
bool call_handshake_unstarted(void* ctx) { return static_cast<SwapClient*>(ctx)->handshake_unstarted(); }
bool call_seal(void* ctx, ConnState* st, unsigned char* p, std::size_t len) {
  return static_cast<SwapClient*>(ctx)->seal(st, p, len);
}
Decision call_sign(void* ctx, ConnState* st, const char* data, std::size_t n, std::uint32_t form, char* sig_out,
                   std::size_t* at) {
  return static_cast<SwapClient*>(ctx)->sign(st, data, n, form, sig_out, at);
}

}  // namespace

BrokerOps SwapClient::ops() {
  BrokerOps b;
  b.ctx = this;
  b.swap = call_swap;
  b.report = call_report;
  b.redact = call_redact;
  b.report_coded = call_report_coded;
  b.report_grant_uses = call_report_grant_uses;
  b.prepare = call_prepare;
  if (facts_.handshake_unstarted != nullptr) b.handshake_unstarted = call_handshake_unstarted;
  b.sign = call_sign;
  b.seal = call_seal;
  return b;
}

// The common part of every request; nullptr when the transport has no buffer.
Request* SwapClient::fill(Op op, const ConnFacts& f, ConnState* st, const void* data, std::size_t n, bool at_end) {
  Request* r = t_.request();
  if (r == nullptr) return nullptr;
  std::memset(r, 0, offsetof(Request, data));   // header and text fields; data/chain set below
  r->version = wire::kProtocolVersion;
  r->op = op;
  r->channel = f.channel;
  r->flags = at_end ? wire::kFlagTokenAtEnd : 0;
  r->pid = f.pid;
  r->conn_id = f.conn_id != 0 ? f.conn_id : (st != nullptr ? st->conn_id : 0);
  // Host names are printable ASCII without spaces (the broker checks); drop anything else.
  std::size_t hl = 0;
  for (std::size_t i = 0; i < f.host_len && hl < wire::kMaxHost; ++i) {
    const auto c = static_cast<unsigned char>(f.host[i]);
    if (c > 0x20 && c < 0x7f) r->host[hl++] = static_cast<char>(c);
  }
  r->host_len = static_cast<std::uint16_t>(hl);
  if (st != nullptr) {
    copy_field(r->method, &r->method_len, wire::kMaxMethod, st->method, st->method_len);
    copy_field(r->path, &r->path_len, wire::kMaxPath, st->path, st->path_len);
    copy_field(r->http_host, &r->http_host_len, wire::kMaxHost, st->http_host, st->http_host_len);
    if (op != Op::Redact && op != Op::Seal) r->flags |= st->request_flags & wire::kRequestFlags;
  }
  copy_field(r->peer, &r->peer_len, wire::kMaxPeer, f.peer, f.peer_len);
  if (n > wire::kMaxData) n = wire::kMaxData;
  std::memcpy(r->data, data, n);
  r->data_len = static_cast<std::uint32_t>(n);
  r->chain_len = 0;
  if (f.channel != wire::Channel::Plain && f.fill_chain != nullptr) {
    const std::size_t cl = f.fill_chain(f.ctx, r->chain, wire::kMaxChain);
    if (cl > 0 && cl <= wire::kMaxChain) {
      r->chain_len = static_cast<std::uint32_t>(cl);
      r->flags |= wire::kFlagPeerHasChain;
    }
  }
  return r;
}

const Reply* SwapClient::round_trip(Request* r) {
  if (r == nullptr) return nullptr;
  return t_.exchange();
}

void SwapClient::wipe_exchange(Request* r, const Reply* rep) {
  if (r != nullptr) explicit_bzero(r->data, sizeof r->data);
  if (rep != nullptr) explicit_bzero(const_cast<Reply*>(rep), sizeof(Reply));
}

// Reports the unreported uses of one grant. The caller holds st's lock.
void SwapClient::report_uses(ConnState* st, Grant& g) {
  if (g.unreported == 0) return;
  facts_.ensure_gathered();   // for pid and conn_id; host and peer come from st
  ConnFacts f;
  facts_of_state(facts_, st, &f);
  Request* r = fill(Op::Report, f, st, g.token, g.token_len, false);
  if (r != nullptr) r->uses = g.unreported;
  wipe_exchange(r, round_trip(r));
  g.unreported = 0;
}

// A grant answers only for a request that names the connection's verified host (its
// Host header and any absolute-form authority): anything else goes to the broker, which
// refuses and audits it (issue 15, class 7: a grant must not carry a value to a request
// fronted for another host on the same connection).
static bool request_names_granted_host(const ConnState* st) {
  if ((st->request_flags & wire::kRequestFlags) != 0) return false;
  // The granted host as the broker saw it (fill drops what is not printable ASCII).
  char host[wire::kMaxHost];
  std::size_t hl = 0;
  for (std::size_t i = 0; i < st->host_len && hl < sizeof host; ++i) {
    const auto c = static_cast<unsigned char>(st->host[i]);
    if (c > 0x20 && c < 0x7f) host[hl++] = static_cast<char>(c);
  }
  const char* named = nullptr;
  std::size_t nl = 0;
  return wire::check_request_host(st->http_host, st->http_host_len, st->path, st->path_len, host, hl, &named, &nl) ==
         wire::HostCheck::Match;
}

// A swap the broker already granted on this connection: no round trip.
bool SwapClient::swap_from_grant(ConnState* st, const char* tok, std::size_t len, char* value_out, std::size_t cap,
                                 std::size_t* value_len) {
  for (std::size_t i = 0; i < st->ngrants; ++i) {
    Grant& g = st->grants[i];
    if (g.token_len != len || std::memcmp(g.token, tok, len) != 0 || g.value_len > cap) continue;
    std::memcpy(value_out, g.value, g.value_len);
    *value_len = g.value_len;
    if (++g.unreported >= wire::kReuseReportEvery) report_uses(st, g);
    return true;
  }
  return false;
}

void SwapClient::remember_grant(ConnState* st, const char* tok, std::size_t len, const Reply& rep,
                                std::uint64_t peer) {
  // Grants on one state share one peer; one given for another peer replaces them (the
  // recheck before every reuse makes this rare: it drops stale grants first).
  if (st->ngrants > 0 && st->grant_peer != peer) drop_grants(st);
  if (st->ngrants == kMaxGrants || len > kMaxGrantLen || rep.data_len > kMaxGrantLen) return;
  Grant& g = st->grants[st->ngrants++];
  std::memcpy(g.token, tok, len);
  g.token_len = static_cast<std::uint16_t>(len);
  std::memcpy(g.value, rep.data, rep.data_len);
  g.value_len = static_cast<std::uint16_t>(rep.data_len);
  g.unreported = 0;
  st->grant_peer = peer;
  // Kept for the use reports, which may come after the TLS object is gone.
  st->channel = facts_.channel;
  st->host_len = facts_.host_len < sizeof st->host ? facts_.host_len : sizeof st->host;
  std::memcpy(st->host, facts_.host, st->host_len);
  st->peer_len = facts_.peer_len < sizeof st->peer ? facts_.peer_len : sizeof st->peer;
  std::memcpy(st->peer, facts_.peer, st->peer_len);
  if (facts_.on_grant != nullptr) facts_.on_grant(facts_.ctx);
}

// The identity of the peer the facts' TLS object talks to now (peer_identity.h), from
// the chain's compact ids when the library keeps them, else from its DER chain (into
// the transport's request buffer r, free between exchanges; r may already hold it).
// The same rule when a grant is given and each time it is rechecked, so they compare.
namespace {
constexpr std::size_t kMaxChainIds = 16 * 20;   // 16 certificates' SHA-1: no real chain is longer
// Leads the ids in the digest's input: a DER chain starts with 0x30 (a SEQUENCE), so ids
// and a chain never feed the same bytes.
constexpr unsigned char kIdsTag = 0x01;

bool peer_now(const ConnFacts& f, Request* r, bool r_has_chain, std::uint64_t* out) {
  if (f.channel != wire::Channel::Plain && f.fill_chain_ids != nullptr) {
    unsigned char ids[1 + kMaxChainIds];
    ids[0] = kIdsTag;
    const std::size_t n = f.fill_chain_ids(f.ctx, ids + 1, kMaxChainIds);
    if (n > 0 && n <= kMaxChainIds) return peer_identity(f.channel, f.host, f.host_len, ids, 1 + n, out);
  }
  if (r == nullptr) return false;
  std::size_t cl = 0;
  if (r_has_chain) {
    cl = r->chain_len;
  } else if (f.channel != wire::Channel::Plain && f.fill_chain != nullptr) {
    cl = f.fill_chain(f.ctx, r->chain, wire::kMaxChain);
    if (cl > wire::kMaxChain) cl = 0;
  }
  return peer_identity(f.channel, f.host, f.host_len, r->chain, cl, out);
}
}  // namespace

// Is the live TLS object still talking to the peer st's grants were given for? Its
// address may have been reused by a new session (freed past the shim's hooks).
bool SwapClient::grants_match_peer(const ConnState* st) {
  facts_.ensure_host();
  if (facts_.handshake_done != nullptr && !facts_.handshake_done(facts_.ctx)) return false;
  std::uint64_t now = 0;
  return peer_now(facts_, t_.request(), false, &now) && now == st->grant_peer;
}

// Ends st's grants: their uses reported (for the peer they were given for), values wiped.
void SwapClient::drop_grants(ConnState* st) {
  report_grant_uses(st);
  explicit_bzero(st->grants, sizeof st->grants);
  st->ngrants = 0;
  st->grant_peer = 0;
}

Decision SwapClient::swap(ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                          std::size_t cap, std::size_t* value_len, std::size_t* token_len) {
  // Unsafe now: no grant answers; the broker refuses and audits the reason.
  const std::uint8_t unsafe = facts_.unsafe != nullptr ? (facts_.unsafe(facts_.ctx) & wire::kUnsafeFlags) : 0;
  if (unsafe == 0 && st != nullptr && st->ngrants > 0) {
    if (!t_.broker_alive()) {
      drop_grants(st);   // the run is over: its grants too
    } else if (!facts_.peer_fixed && !grants_match_peer(st)) {
      drop_grants(st);   // another peer behind the same object
    } else if (request_names_granted_host(st) && swap_from_grant(st, tok, len, value_out, cap, value_len)) {
      return Decision::Allow;
    }
  }
  facts_.ensure_gathered();
  // Asked after the gather, which completes a handshake the caller left to this write.
  const bool unfinished = facts_.handshake_done != nullptr && !facts_.handshake_done(facts_.ctx);
  Request* r = fill(Op::Swap, facts_, st, tok, len, at_end);
  if (r != nullptr) {
    r->flags |= unsafe;
    if (unfinished) r->form = wire::kFormHandshakeUnfinished;
  }
  // The identity of the peer this request speaks for, kept with a grant the reply gives.
  std::uint64_t peer = 0;
  const bool have_peer = r != nullptr && peer_now(facts_, r, true, &peer);
  const Reply* rep = round_trip(r);
  if (rep == nullptr) {
    wipe_exchange(r, nullptr);
    return Decision::Refuse;
  }
  Decision d = rep->decision;
  if (d == Decision::Allow && (unsafe != 0 || unfinished)) {
    d = Decision::Refuse;   // a broker that allows what it was told is unsafe: fail closed
    t_.warn(unsafe != 0 ? "blind mode: broker allowed a swap on an unsafe TLS connection; sent unchanged"
                        : "blind mode: broker allowed a swap before the TLS handshake finished; sent unchanged");
  } else if (d == Decision::Allow) {
    if (rep->data_len > cap) {
      d = Decision::Refuse;   // a value never grows past its token; refuse to overflow
      t_.warn("blind mode: broker value longer than its token; sent unchanged");
    } else {
      std::memcpy(value_out, rep->data, rep->data_len);
      *value_len = rep->data_len;
      if (st != nullptr && have_peer && (rep->flags & wire::kReplyReuseOnConnection) != 0)
        remember_grant(st, tok, len, *rep, peer);
      if (st != nullptr && (rep->flags & wire::kReplySealResponses) != 0) st->seal_secret = rep->secret_id;
      if (st != nullptr && rep->fp_len > 0) {
        Fingerprint fp;
        fp.base = rep->fp_base;
        fp.hash = rep->fp_hash;
        fp.len = rep->fp_len;
        fp.secret_id = rep->secret_id;
        fp.quick_base = rep->fq_base;
        fp.quick = rep->fq_hash;
        st->add_fingerprint(fp);
        // The value's encoded forms (base64, hex, percent, JSON...), each its own print.
        for (std::size_t i = 0; i < rep->nforms && i < wire::kValueFormCount; ++i) {
          fp.hash = rep->forms[i].hash;
          fp.quick = rep->forms[i].quick;
          fp.len = rep->forms[i].len;
          fp.form = rep->forms[i].form;
          st->add_fingerprint(fp);
        }
      }
    }
  } else if (d == Decision::Incomplete) {
    *token_len = rep->token_len;
  }
  wipe_exchange(r, rep);
  return d;
}

Decision SwapClient::sign(ConnState* st, const char* data, std::size_t n, std::uint32_t form, char* sig_out,
                          std::size_t* at) {
  const std::uint8_t unsafe = facts_.unsafe != nullptr ? (facts_.unsafe(facts_.ctx) & wire::kUnsafeFlags) : 0;
  facts_.ensure_gathered();
  const bool unfinished = facts_.handshake_done != nullptr && !facts_.handshake_done(facts_.ctx);
  Request* r = fill(Op::Sign, facts_, st, data, n, false);
  if (r != nullptr) {
    r->flags |= unsafe;
    r->form = form | (unfinished ? wire::kFormHandshakeUnfinished : 0);
  }
  const Reply* rep = round_trip(r);
  Decision d = rep != nullptr ? rep->decision : Decision::Refuse;
  if (d == Decision::Allow && (unsafe != 0 || unfinished || rep->data_len != wire::kSignHashLen)) {
    d = Decision::Refuse;   // a signature where none may go, or not a signature: fail closed
    t_.warn("blind mode: broker answered a signing request it should have refused; sent unchanged");
  } else if (d == Decision::Allow) {
    std::memcpy(sig_out, rep->data, wire::kSignHashLen);
    *at = rep->token_len;
  }
  wipe_exchange(r, rep);
  return d;
}

void SwapClient::report_coded(ConnState* st, const char* coding, std::size_t len) {
  facts_.ensure_gathered();
  Request* r = fill(Op::Report, facts_, st, coding, len == 0 ? 1 : len, false);
  if (r != nullptr) r->flags |= wire::kFlagCodedResponse;
  wipe_exchange(r, round_trip(r));
}

void SwapClient::report(ConnState* st, const char* tok, std::size_t len) {
  facts_.ensure_gathered();
  Request* r = fill(Op::Report, facts_, st, tok, len, false);
  if (r != nullptr && st != nullptr) r->form = st->report_reason;
  wipe_exchange(r, round_trip(r));
}

bool SwapClient::redact(ConnState* st, unsigned char* p, std::size_t len, std::uint32_t form) {
  facts_.ensure_gathered();
  Request* r = fill(Op::Redact, facts_, st, p, len, false);
  if (r != nullptr) r->form = form;
  const Reply* rep = round_trip(r);
  const bool replaced = rep != nullptr && rep->decision == Decision::Allow && rep->data_len == len;
  if (replaced) std::memcpy(p, rep->data, len);
  wipe_exchange(r, rep);
  return replaced;
}

bool SwapClient::seal(ConnState* st, unsigned char* p, std::size_t len) {
  if (st == nullptr || st->seal_secret == 0 || len == 0 || len > wire::kMaxData) return false;
  facts_.ensure_gathered();
  Request* r = fill(Op::Seal, facts_, st, p, len, false);
  if (r != nullptr) r->form = st->seal_secret;
  const Reply* rep = round_trip(r);
  const bool sealed = rep != nullptr && rep->decision == Decision::Allow && rep->data_len == len;
  if (sealed) std::memcpy(p, rep->data, len);
  wipe_exchange(r, rep);
  return sealed;
}

// Called before the driver locks st: ngrants is read unlocked, which is safe for the
// thread that writes this connection (the only one that adds grants); elsewhere the
// read only decides whether to gather now or on demand. An object with grants whose
// handshake is not done (cleared and reconnected) gathers now too: the gather completes
// the handshake, which must not run under st's lock (the hooks it passes through take it).
void SwapClient::prepare(const ConnState* st) {
  if (st == nullptr || st->ngrants == 0 || (facts_.handshake_done != nullptr && !facts_.handshake_done(facts_.ctx)))
    facts_.ensure_gathered();
}

void SwapClient::report_grant_uses(ConnState* st) {
  for (std::size_t i = 0; i < st->ngrants; ++i) report_uses(st, st->grants[i]);
}

}  // namespace kz::preload
