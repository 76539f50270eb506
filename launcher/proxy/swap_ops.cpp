#include "proxy/swap_ops.h"

#include <cstring>
#include <memory>

#include "secrets/process_tree.h"
#include "kz/wipe.h"

namespace kz {

namespace {

using wire::Decision;
using wire::Op;

// One wire::Request per I/O thread (it is ~38 KiB; decisions are rare compared with the
// bytes relayed): on the heap, its data wiped after every decision.
wire::Request& thread_request() {
  thread_local std::unique_ptr<wire::Request> req(new wire::Request());
  return *req;
}

PeerProcess peer_of(SwapContext& c) {
  if (!c.exe_known) {
    c.exe_known = true;
    c.exe = c.pid > 0 ? executable_of(c.pid) : std::string();
    if (c.pid > 0 && c.decide != nullptr && c.decide->tree != nullptr) c.lineage = c.decide->tree->lineage(c.pid);
  }
  return PeerProcess{c.pid, c.exe, c.lineage};
}

void copy_field(char* dst, std::uint16_t* dst_len, std::size_t cap, const char* src, std::size_t n) {
  if (n > cap) n = cap;
  if (n > 0) std::memcpy(dst, src, n);
  *dst_len = static_cast<std::uint16_t>(n);
}

// Fills the request as the shim's broker client does (broker_client.cpp fill_request):
// host printable ASCII only, method/path from the connection state, the peer's chain.
wire::Request& fill_request(SwapContext& c, Op op, preload::ConnState* st, const void* data, std::size_t n,
                            bool at_end) {
  wire::Request& r = thread_request();
  std::memset(&r, 0, offsetof(wire::Request, data));
  r.version = wire::kProtocolVersion;
  r.op = op;
  r.channel = c.channel;
  r.flags = at_end ? wire::kFlagTokenAtEnd : 0;
  r.pid = static_cast<std::uint32_t>(c.pid);
  r.conn_id = c.conn_id;
  std::size_t hl = 0;
  for (std::size_t i = 0; i < c.host.size() && hl < wire::kMaxHost; ++i) {
    const auto ch = static_cast<unsigned char>(c.host[i]);
    if (ch > 0x20 && ch < 0x7f) r.host[hl++] = static_cast<char>(ch);
  }
  r.host_len = static_cast<std::uint16_t>(hl);
  if (st != nullptr) {
    copy_field(r.method, &r.method_len, wire::kMaxMethod, st->method, st->method_len);
    copy_field(r.path, &r.path_len, wire::kMaxPath, st->path, st->path_len);
  }
  copy_field(r.peer, &r.peer_len, wire::kMaxPeer, c.peer.data(), c.peer.size());
  if (n > wire::kMaxData) n = wire::kMaxData;
  std::memcpy(r.data, data, n);
  r.data_len = static_cast<std::uint32_t>(n);
  r.chain_len = 0;
  if (c.channel != wire::Channel::Plain && !c.chain.empty() && c.chain.size() <= wire::kMaxChain) {
    std::memcpy(r.chain, c.chain.data(), c.chain.size());
    r.chain_len = static_cast<std::uint32_t>(c.chain.size());
    r.flags |= wire::kFlagPeerHasChain;
  }
  return r;
}

// decide() on the filled request; the audit record (if any) goes out with the
// connection id, as the broker does. The caller wipes the reply.
DecideOutcome run_decide(SwapContext& c, wire::Request& r) {
  DecideOutcome out;
  if (!wire::request_is_valid(r, sizeof r)) {
    out.reply.decision = Decision::Refuse;   // cannot happen with the fields bounded above
  } else {
    out = decide(*c.decide, r, peer_of(c));
  }
  wipe(r.data, r.data_len);
  if (out.audit && c.audit != nullptr) {
    out.audit->conn = c.conn_id;
    out.audit->via = "proxy";
    c.audit->record(std::move(*out.audit));
  }
  return out;
}

void report_uses(SwapContext& c, preload::ConnState* st, preload::Grant& g) {
  if (g.unreported == 0) return;
  wire::Request& r = fill_request(c, Op::Report, st, g.token, g.token_len, false);
  r.uses = g.unreported;
  DecideOutcome out = run_decide(c, r);
  wipe(&out.reply, sizeof out.reply);
  g.unreported = 0;
}

bool swap_from_grant(SwapContext& c, preload::ConnState* st, const char* tok, std::size_t len, char* value_out,
                     std::size_t cap, std::size_t* value_len) {
  for (std::size_t i = 0; i < st->ngrants; ++i) {
    preload::Grant& g = st->grants[i];
    if (g.token_len != len || std::memcmp(g.token, tok, len) != 0 || g.value_len > cap) continue;
    std::memcpy(value_out, g.value, g.value_len);
    *value_len = g.value_len;
    if (++g.unreported >= wire::kReuseReportEvery) report_uses(c, st, g);
    return true;
  }
  return false;
}

void remember_grant(SwapContext& c, preload::ConnState* st, const char* tok, std::size_t len, const wire::Reply& rep) {
  if (st->ngrants == preload::kMaxGrants || len > preload::kMaxGrantLen || rep.data_len > preload::kMaxGrantLen) return;
  preload::Grant& g = st->grants[st->ngrants++];
  std::memcpy(g.token, tok, len);
  g.token_len = static_cast<std::uint16_t>(len);
  std::memcpy(g.value, rep.data, rep.data_len);
  g.value_len = static_cast<std::uint16_t>(rep.data_len);
  g.unreported = 0;
  // The shim keeps these for reports after the TLS object is gone; here the SwapContext
  // outlives the state, but the fields stay filled for anything that reads them.
  st->channel = c.channel;
  st->host_len = c.host.size() < sizeof st->host ? c.host.size() : sizeof st->host;
  std::memcpy(st->host, c.host.data(), st->host_len);
  st->peer_len = c.peer.size() < sizeof st->peer ? c.peer.size() : sizeof st->peer;
  std::memcpy(st->peer, c.peer.data(), st->peer_len);
}

// The callbacks are called from kz_preload_core, built without exceptions: nothing may
// propagate through it. Any exception (allocation, JSON) is a refusal: fail closed.
Decision do_swap(void* ctx, preload::ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                 std::size_t cap, std::size_t* value_len, std::size_t* token_len) noexcept {
  auto& c = *static_cast<SwapContext*>(ctx);
  try {
    if (st != nullptr && st->ngrants > 0 && swap_from_grant(c, st, tok, len, value_out, cap, value_len))
      return Decision::Allow;
    wire::Request& r = fill_request(c, Op::Swap, st, tok, len, at_end);
    DecideOutcome out = run_decide(c, r);
    const wire::Reply& rep = out.reply;
    Decision d = rep.decision;
    if (d == Decision::Allow) {
      if (rep.data_len > cap) {
        d = Decision::Refuse;   // a value never grows past its token
      } else {
        std::memcpy(value_out, rep.data, rep.data_len);
        *value_len = rep.data_len;
        if (st != nullptr && (rep.flags & wire::kReplyReuseOnConnection) != 0) remember_grant(c, st, tok, len, rep);
        if (st != nullptr && rep.fp_len > 0) {
          preload::Fingerprint f;
          f.base = rep.fp_base;
          f.hash = rep.fp_hash;
          f.len = rep.fp_len;
          f.secret_id = rep.secret_id;
          st->add_fingerprint(f);
        }
      }
    } else if (d == Decision::Incomplete) {
      *token_len = rep.token_len;
    }
    wipe(&out.reply, sizeof out.reply);
    return d;
  } catch (...) {
    return Decision::Refuse;
  }
}

void do_report(void* ctx, preload::ConnState* st, const char* tok, std::size_t len) noexcept {
  auto& c = *static_cast<SwapContext*>(ctx);
  try {
    DecideOutcome out = run_decide(c, fill_request(c, Op::Report, st, tok, len, false));
    wipe(&out.reply, sizeof out.reply);
  } catch (...) {
  }
}

void do_report_grant_uses(void* ctx, preload::ConnState* st) noexcept {
  auto& c = *static_cast<SwapContext*>(ctx);
  try {
    for (std::size_t i = 0; i < st->ngrants; ++i) report_uses(c, st, st->grants[i]);
  } catch (...) {
  }
}

bool do_redact(void* ctx, preload::ConnState* st, unsigned char* p, std::size_t len) noexcept {
  auto& c = *static_cast<SwapContext*>(ctx);
  try {
    DecideOutcome out = run_decide(c, fill_request(c, Op::Redact, st, p, len, false));
    bool replaced = false;
    if (out.reply.decision == Decision::Allow && out.reply.data_len == len) {
      std::memcpy(p, out.reply.data, len);
      replaced = true;
    }
    wipe(&out.reply, sizeof out.reply);
    return replaced;
  } catch (...) {
    return false;
  }
}

}  // namespace

preload::BrokerOps swap_ops(SwapContext* ctx) {
  preload::BrokerOps b;
  b.ctx = ctx;
  b.swap = do_swap;
  b.report = do_report;
  b.redact = do_redact;
  b.report_grant_uses = do_report_grant_uses;
  return b;
}

void report_token(SwapContext& ctx, const char* tok, std::size_t len) { do_report(&ctx, nullptr, tok, len); }

}  // namespace kz
