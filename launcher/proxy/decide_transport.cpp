#include "proxy/decide_transport.h"

#include <atomic>
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

// Connections of the proxy that wait for an approval at once; past it a use that needs
// one is refused without asking. Each costs an I/O thread's stand-in (held_io.h), and an
// ask that many identical requests join counts once against the gate's own cap.
constexpr int kMaxHeldInProxy = 64;
std::atomic<int> held_in_proxy{0};

// approve = ...: the use waits for a person. The request is held (in this thread's
// buffer), the ask opened, and this connection waits on its thread, whose other
// connections a stand-in serves meanwhile (while_held); then it is decided again with
// the answer. A denial, a timeout, a full gate or a failure on the way refuses (fail
// closed), and the ask never outlives its waiter.
void hold_for_approval(SwapContext& c, const wire::Request& req, DecideOutcome& out) {
  ApprovalGate& gate = *c.decide->approvals;
  wipe(out.reply.data, sizeof out.reply.data);
  out.reply.data_len = 0;
  struct Slot {
    bool taken = held_in_proxy.fetch_add(1) < kMaxHeldInProxy;
    ~Slot() { held_in_proxy.fetch_sub(1); }
  } slot;
  if (!slot.taken) {
    refuse_outcome(out, out.ask->secret + ": too many requests wait for an approval (" +
                            std::to_string(kMaxHeldInProxy) + " in the proxy): refused without asking");
    out.ask.reset();
    return;
  }
  bool created = false;
  const ApprovalAsk ask = gate.open(std::move(*out.ask), &created);
  out.ask.reset();
  if (ask.id == 0) {
    refuse_outcome(out, ask.secret + ": too many requests wait for an approval (" +
                            std::to_string(ApprovalGate::kMaxOpenAsks) + "): refused without asking");
    return;
  }
  // Whatever happens from here (an audit sink that throws, no thread for the stand-in),
  // the ask is answered before this returns: a dead ask would keep a gate slot and the
  // terminal prompt.
  struct Unanswered {
    ApprovalGate& gate;
    std::uint64_t id;
    bool done = false;
    ~Unanswered() {
      if (!done) gate.answer(id, ApprovalVerdict::Timeout, "", "error");
    }
  } guard{gate, ask.id};
  // One "asked" and one answer record per ask, by the waiter that opened it.
  if (created && c.audit != nullptr) c.audit->record(approval_event(ask, "asked", c.decide->approval_channels));
  ApprovalAnswer answer;
  auto wait = [&] { answer = gate.await(ask.id); };
  if (c.while_held) c.while_held(wait);
  else wait();
  guard.done = true;
  if (created && c.decide->record_approval_answers && c.audit != nullptr) {
    ApprovalEvent e = approval_event(ask, verdict_name(answer.verdict), answer.channel);
    if (!answer.by.empty()) e.by = answer.by;
    c.audit->record(std::move(e));
  }
  // The outcome of now; the temporary's copy of the value is wiped here, not left on
  // this thread's stack.
  DecideOutcome again = decide_answered(*c.decide, req, peer_of(c), answer);
  out.reply = again.reply;
  wipe(&again.reply, sizeof again.reply);
  out.audit = std::move(again.audit);
  out.mint = std::move(again.mint);
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
