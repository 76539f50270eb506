#include "proxy/decide_transport.h"

#include <cstring>
#include <memory>

#include "kz/wipe.h"
#include "secrets/process_tree.h"

namespace kz {

namespace {

// One request/reply pair per I/O thread (the request is ~38 KiB; decisions are rare
// compared with the bytes relayed): on the heap, wiped by the client after every use.
struct Buffers {
  wire::Request req{};
  wire::Reply rep{};
};

Buffers& thread_buffers() {
  thread_local std::unique_ptr<Buffers> b(new Buffers());
  return *b;
}

PeerProcess peer_of(SwapContext& c) {
  if (!c.exe_known) {
    c.exe_known = true;
    c.exe = c.pid > 0 ? executable_of(c.pid) : std::string();
    if (c.pid > 0 && c.decide != nullptr && c.decide->tree != nullptr) c.lineage = c.decide->tree->lineage(c.pid);
  }
  return PeerProcess{c.pid, c.exe, c.lineage};
}

// The decision's audit record (if any) goes out with the connection id, as the broker
// does. A sink that throws fails the decision (the caller refuses): a swap is never
// done unrecorded.
void send_audit(const SwapContext& c, DecideOutcome& out) {
  if (out.mint && c.audit != nullptr) c.audit->record(std::move(*out.mint));
  if (!out.audit || c.audit == nullptr) return;
  out.audit->conn = c.conn_id;
  out.audit->via = "proxy";
  c.audit->record(std::move(*out.audit));
}

// ConnFacts::gather: the facts from the SwapContext, which is complete by now.
void gather_from_context(preload::ConnFacts* f) {
  const auto& c = *static_cast<const SwapContext*>(f->ctx);
  f->channel = c.channel;
  f->pid = static_cast<std::uint32_t>(c.pid);
  f->conn_id = c.conn_id;
  f->host_len = c.host.size() < sizeof f->host ? c.host.size() : sizeof f->host;
  std::memcpy(f->host, c.host.data(), f->host_len);
  f->peer_len = c.peer.size() < sizeof f->peer ? c.peer.size() : sizeof f->peer;
  std::memcpy(f->peer, c.peer.data(), f->peer_len);
}

std::size_t chain_from_context(void* ctx, unsigned char* out, std::size_t cap) {
  const std::string& chain = static_cast<const SwapContext*>(ctx)->chain;
  if (chain.empty() || chain.size() > cap) return 0;
  std::memcpy(out, chain.data(), chain.size());
  return chain.size();
}

// approve = ...: the use waits for a person. The request is held (in this thread's
// buffer), the ask opened, and this connection waits on its thread, which meanwhile
// serves no one else (while_held hands them to another); then it is decided again with
// the answer. A denial, a timeout or a full gate refuses (fail closed).
void hold_for_approval(SwapContext& c, const wire::Request& req, DecideOutcome& out) {
  ApprovalGate& gate = *c.decide->approvals;
  wipe(out.reply.data, sizeof out.reply.data);
  out.reply.data_len = 0;
  const ApprovalAsk ask = gate.open(std::move(*out.ask));
  out.ask.reset();
  if (ask.id == 0) {
    refuse_outcome(out, ask.secret + ": too many requests wait for an approval (" +
                            std::to_string(ApprovalGate::kMaxOpenAsks) + "): refused without asking");
    return;
  }
  if (c.audit != nullptr) c.audit->record(approval_event(ask, "asked", c.decide->approval_channels));
  ApprovalAnswer answer;
  auto wait = [&] { answer = gate.await(ask.id); };
  if (c.while_held) c.while_held(wait);
  else wait();
  if (c.decide->record_approval_answers && c.audit != nullptr) {
    ApprovalEvent e = approval_event(ask, verdict_name(answer.verdict), answer.channel);
    if (!answer.by.empty()) e.by = answer.by;
    c.audit->record(std::move(e));
  }
  out = decide_answered(*c.decide, req, peer_of(c), answer);
}

}  // namespace

wire::Request* DecideTransport::request() noexcept {
  try {
    return &thread_buffers().req;
  } catch (...) {
    return nullptr;
  }
}

wire::Reply* DecideTransport::exchange() noexcept {
  wire::Reply* rep = nullptr;
  try {
    Buffers& b = thread_buffers();
    rep = &b.rep;
    if (!wire::request_is_valid(b.req, sizeof b.req)) return nullptr;   // cannot happen: the client bounds every field
    DecideOutcome out = decide(*c_.decide, b.req, peer_of(c_));
    if (out.ask) hold_for_approval(c_, b.req, out);
    *rep = out.reply;
    wipe(&out.reply, sizeof out.reply);
    send_audit(c_, out);
    return rep;
  } catch (...) {
    if (rep != nullptr) wipe(rep, sizeof *rep);
    return nullptr;
  }
}

ProxySwapClient::ProxySwapClient(SwapContext& c) : transport_(c), client_(transport_, facts_) {
  facts_.ctx = &c;
  facts_.gather = gather_from_context;
  facts_.fill_chain = chain_from_context;
  facts_.peer_fixed = true;   // a session's upstream never changes; its state goes with it
}

}  // namespace kz
