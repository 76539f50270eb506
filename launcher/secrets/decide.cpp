#include "secrets/decide.h"
#include "secrets/live_value.h"

#include <string.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "kz/wire/http_host.h"
#include "secrets/decide_seal.h"
#include "secrets/decide_sign.h"

namespace kz {

namespace {

using wire::Decision;
using wire::Op;

std::string_view field(const char* p, std::size_t n) { return {p, n}; }

const char* channel_name(wire::Channel c) {
  switch (c) {
    case wire::Channel::OpenSSL: return "openssl";
    case wire::Channel::GnuTLS: return "gnutls";
    case wire::Channel::Plain: return "plain";
  }
  return "?";
}

void set_reason(wire::Reply& r, std::string_view why) {
  r.reason_len = static_cast<std::uint16_t>(std::min(why.size(), wire::kMaxReason));
  std::memcpy(r.reason, why.data(), r.reason_len);
}

// Why a swap on this TLS object would put the value where the agent can read it (or
// judge it against a request the shim cannot parse); empty when the shim saw none of it.
std::string_view unsafe_connection_reason(std::uint8_t flags) {
  if ((flags & wire::kFlagKeyLog) != 0) return "TLS key logging is on for this connection";
  if ((flags & wire::kFlagNotSocketBio) != 0) return "the TLS object writes to a memory BIO, not a socket";
  if ((flags & wire::kFlagAlpnNotHttp1) != 0)
    return "the connection negotiated an ALPN protocol other than the one kz follows on it (http/1.1 or none; h2 "
           "only when its first bytes were the HTTP/2 preface)";
  return {};
}

// Domain fronting (issue 15, class 7): a server routes a request by its Host header (and
// an absolute-form target's authority), not by the TLS SNI. The value goes only to a
// request whose every host name is the host the connection verified. Empty: it does.
std::string fronting_reason(const wire::Request& req, const std::string& host) {
  if ((req.flags & wire::kFlagHostInvalid) != 0)
    return "the request has more than one Host header, or one that is not a host name";
  const char* named = nullptr;
  std::size_t nl = 0;
  switch (wire::check_request_host(req.http_host, req.http_host_len, req.path, req.path_len, host.data(),
                                   host.size(), &named, &nl)) {
    case wire::HostCheck::Match: return {};
    case wire::HostCheck::Missing: return "the request names no host (no Host header seen with its request line)";
    case wire::HostCheck::Malformed: return "the request's Host header or target is not a host name or URL";
    case wire::HostCheck::Mismatch:
      return "the request is for " + std::string(named, nl) + ", not " + host +
             ", the host the connection verified (domain fronting)";
  }
  return "the request's host could not be checked";
}

void set_data(wire::Reply& r, std::string_view bytes) {
  r.data_len = static_cast<std::uint32_t>(bytes.size());
  std::memcpy(r.data, bytes.data(), bytes.size());
}

// The canary record of a request that carries a canary's token: the facts of its swap
// record, and where it was seen.
CanarySeen canary_sight(const DecideContext& ctx, const wire::Request& req, const TokenUse& a, const TokenEntry& s) {
  CanarySeen c;
  c.secret = s.name;
  c.token_id = s.token_id;
  c.where = req.channel == wire::Channel::Plain ? "plain" : ctx.via;
  if (req.channel == wire::Channel::Plain) c.via = ctx.via;
  c.pid = a.pid;
  c.exe = a.exe;
  c.lineage = a.lineage;
  c.host = a.host;
  c.peer = a.peer;
  c.method = a.method;
  c.path = a.path;
  return c;
}

}  // namespace

std::string request_refusal(const DecideContext& ctx, const wire::Request& req, const TokenEntry& s, bool signing) {
  // Signing judges the request by the key's binding as if it were sent (check_binding
  // refuses to send a signing key at all).
  Binding signing_binding;
  if (signing) {
    signing_binding = s.binding;
    signing_binding.sign.clear();
  }
  const Binding& binding = signing ? signing_binding : s.binding;
  const std::string host(field(req.host, req.host_len));
  const std::string_view method = field(req.method, req.method_len);
  const std::string_view path = field(req.path, req.path_len);
  if (req.channel == wire::Channel::Plain) return "plain TCP (no TLS)";
  if (std::string_view why = unsafe_connection_reason(req.flags); !why.empty()) return std::string(why);
  if ((req.op == wire::Op::Swap || req.op == wire::Op::Sign) && (req.form & wire::kFormHandshakeUnfinished) != 0)
    return "the TLS handshake had not finished: the certificate chain the object reported may be an earlier "
           "session's";
  // The host first: a peer's certificate is verified only for a host the secret may go to.
  if (BindingVerdict v = check_host_binding(binding, s.name, host); !v) return std::move(v.reason);
  const std::string_view chain(reinterpret_cast<const char*>(req.chain), req.chain_len);
  if (std::string why = ctx.verifier->verify(chain, host); !why.empty()) return why;
  if (std::string why = fronting_reason(req, host); !why.empty()) return why;
  // An absolute-form target (its authority checked above): the binding judges its path.
  std::string_view target = path;
  if (std::size_t ap = 0, al = 0, pp = 0; wire::absolute_target(path.data(), path.size(), &ap, &al, &pp))
    target = pp < path.size() ? path.substr(pp) : std::string_view("/");
  if (BindingVerdict v = check_binding(binding, s.name, host, method, target); !v) return std::move(v.reason);
  return {};
}

DecideOutcome decide(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer) {
  // Values may rotate (token_table.h): one value, whole, for the whole decision.
  const auto values_lock = ctx.table->read_lock();
  DecideOutcome out;
  wire::Reply& rep = out.reply;
  rep.version = wire::kProtocolVersion;
  rep.op = req.op;
  rep.decision = Decision::Refuse;

  const std::string host(field(req.host, req.host_len));
  const std::string_view method = field(req.method, req.method_len);
  const std::string_view path = field(req.path, req.path_len);
  const std::string_view data(reinterpret_cast<const char*>(req.data), req.data_len);
  TokenUse& a = out.audit.emplace();
  a.op = req.op == Op::Redact ? UseOp::Redact : UseOp::Swap;
  a.pid = static_cast<long>(peer.pid);
  a.exe = peer.exe;
  a.host = host;
  a.channel = channel_name(req.channel);
  a.lineage = peer.lineage;
  if (req.peer_len > 0) a.peer = std::string(field(req.peer, req.peer_len));
  if (!method.empty()) a.method = std::string(method);
  if (!path.empty()) a.path = std::string(path.substr(0, path.find('?')));   // queries may carry tokens
  if (req.http_host_len > 0) a.http_host = std::string(field(req.http_host, req.http_host_len));

  if (req.op == Op::Seal) {
    out.audit.reset();
    decide_seal(ctx, req, peer, rep, out.mint.emplace());
    return out;
  }
  if (req.op == Op::Sign) {
    a.op = UseOp::Sign;
    if (!decide_sign(ctx, req, rep, a)) out.audit.reset();   // not a request of a key kz holds
    return out;
  }

  auto refuse = [&](const TokenEntry* s, std::string why) {
    rep.decision = Decision::Refuse;
    if (s != nullptr) { a.secret = s->name; a.token_id = s->token_id; }
    a.decision = "refuse";
    set_reason(rep, why);
    a.reason = std::move(why);
    return std::move(out);
  };

  if (req.op == Op::Report && (req.flags & wire::kFlagCodedResponse) != 0) {
    a.op = UseOp::Redact;
    // data is the server's Content-Encoding: kept in the record only when it is a plain
    // coding name (it comes from the response, not from kz).
    const bool plain = std::all_of(data.begin(), data.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ',' || c == ' ';
    });
    return refuse(nullptr, "a response on a connection that carries a value arrived content-coded (" +
                               std::string(plain ? data.substr(0, 40) : "?") +
                               "), which redaction cannot see into: the read failed (EPROTO)");
  }

  if (req.op == Op::Redact) {
    const auto form = static_cast<wire::ValueForm>(req.form);
    bool rest_form = false;   // the rest of a kept-prefix value alone, encoded
    const TokenEntry* s = ctx.table->find_value_in_form(data, form, &rest_form);
    // A value sealed from a token endpoint's answer (decide_seal.h) that a server echoes.
    std::shared_ptr<const TokenEntry> sealed;
    if (s == nullptr && ctx.sealed != nullptr) {
      sealed = find_sealed_value(*ctx.table, data, form, ctx.now != 0 ? ctx.now : unix_now());
      s = sealed.get();
    }
    if (s == nullptr) {
      rep.decision = Decision::Unknown;
      out.audit.reset();   // a fingerprint collision, not an event
      return out;
    }
    rep.decision = Decision::Allow;
    // Same length as what it replaces, so the response's framing is untouched: the
    // token in the same form (value_forms.h: escapes or a filler make up a shorter one,
    // a longer one is cut).
    char repl[wire::kMaxData];
    // A raw match is the value after shown_prefix (the prefix stays); an encoded one is
    // of the whole value, so it becomes the agent's whole copy (token_table.h).
    const SecretValue shown = token_as_shown(*s);
    const SecretValue& with = form == wire::ValueForm::Raw || rest_form ? s->token : shown;
    const std::size_t rl = wire::token_in_form(form, with.view().data(), with.size(), data.size(), repl, sizeof repl);
    set_data(rep, std::string_view(repl, rl));
    explicit_bzero(repl, sizeof repl);
    rep.secret_id = s->id;
    a.secret = s->name;
    a.token_id = s->token_id;
    a.decision = "allow";
    a.reason = "a response carried the secret's value; the agent saw the token instead";
    return out;
  }

  const TokenEntry* s = ctx.table->find_token(data);
  // A token sealed from a token endpoint's answer (decide_seal.h), kept alive while used.
  std::shared_ptr<const TokenEntry> sealed;
  if (s == nullptr && ctx.sealed != nullptr) {
    sealed = ctx.table->find(data, ctx.now != 0 ? ctx.now : unix_now());
    s = sealed.get();
  }
  if (s == nullptr && (req.flags & wire::kFlagTokenAtEnd) != 0 && req.op == Op::Swap) {
    if (const TokenEntry* start = ctx.table->find_token_start(data)) {
      rep.decision = Decision::Incomplete;
      rep.token_len = static_cast<std::uint32_t>(start->token.size());
      out.audit.reset();   // the swap (or refusal) of the completed token is the event
      return out;
    }
  }
  if (s == nullptr) return refuse(nullptr, "not a token of this run");
  if (s->canary) {
    if (ctx.canary != nullptr) ctx.canary->raise(canary_sight(ctx, req, a, *s));
    return refuse(s, "canary " + s->name + ": a decoy bound to no host");
  }
  if (req.op == Op::Report && req.uses > 0) {
    // Uses of a connection grant (kReplyReuseOnConnection): recorded, never a decision.
    if (req.channel == wire::Channel::Plain) return refuse(s, "use report on plain TCP (no grant exists there)");
    a.decision = "allow";
    a.secret = s->name;
    a.token_id = s->token_id;
    a.uses = req.uses;
    a.reason = "swapped again on a connection the broker had granted";
    set_reason(rep, "recorded");
    return out;
  }
  if ((req.flags & wire::kFlagUnidentified) != 0)
    return refuse(s, "the request this token belongs to could not be identified (its framing could not be "
                     "followed): it was sent unchanged");
  if (req.op == Op::Report) {
    if (req.form == wire::kReportH2StreamReset)
      return refuse(s, "the value has another length than its token, which an HTTP/2 DATA frame cannot take: "
                       "the stream was reset (RST_STREAM to the server and the program), none of it was sent");
    if (req.channel == wire::Channel::Plain)
      return refuse(s, "plain TCP (no TLS): the token was sent unchanged");
    return refuse(s, "the token could not be swapped in place (split across writes, or the request "
                     "framing could not be corrected): it was sent unchanged");
  }
  if (std::string why = request_refusal(ctx, req, *s, false); !why.empty()) return refuse(s, std::move(why));
  if (s->expired)
    return refuse(s, "the value of " + s->name + " expired and no refresh has succeeded since (fail closed; "
                     "see its rotate records)");
  if (approval_required(s->binding.approve, method, path)) {
    if (ctx.approvals == nullptr)
      return refuse(s, s->name + " needs a person's approval (approve), and the " + std::string(ctx.via) +
                           " has no approval gate to ask it");
    ApprovalAsk ask;
    ask.secret = s->name;
    ask.token_id = s->token_id;
    ask.host = host;
    ask.method = std::string(method);
    ask.path = a.path.value_or("");
    ask.target = std::string(path);   // with the query: what the person approves
    ask.request_hash = approval_request_hash(s->name, method, host, path);
    // "every": each request asks, once (no key: the answer covers that request only).
    const bool single_use = s->binding.approve.mode == ApprovalMode::Every;
    ask.key = s->binding.approve.mode == ApprovalMode::First ? "secret\n" + s->name
              : single_use                                   ? std::string()
                                                             : ask.request_hash;
    ask.ttl_seconds = approval_ttl_seconds(s->binding.approve);
    ask.pid = a.pid;
    ask.exe = a.exe;
    if (single_use || !ctx.approvals->in_force(ask.key)) out.ask = std::move(ask);
  }

  // A minted credential (live_value.h): its current value, never one that expired.
  std::optional<LiveValue::Snapshot> live;
  if (s->live) {
    live = s->live->current(ctx.now != 0 ? ctx.now : unix_now());
    if (!live) return refuse(s, "the access token of " + s->name + " expired and could not be renewed");
    if (live->value.size() > s->token.size())
      return refuse(s, "the renewed access token of " + s->name + " is longer than its token (" +
                           std::to_string(s->token.size()) + " bytes): it cannot be swapped in");
  }
  rep.decision = Decision::Allow;
  set_data(rep, live ? live->value.view() : s->value.view());
  rep.secret_id = s->id;
  if (!s->mint_hosts.empty()) rep.flags |= wire::kReplySealResponses;
  // Nothing to check per request (no methods/paths): the shim may reuse this answer on
  // this TLS connection, whose peer cannot change, and reports the uses. Never for a
  // value that rotates or a minted credential (the next swap must get the value of the
  // moment), nor one that waits for a person's approval, nor a client secret whose
  // answers are sealed (each use arms its connection's seals in the broker).
  if (ctx.grant_connections && !s->live && s->binding.methods.empty() && s->binding.paths.empty() && !s->rotates &&
      s->binding.approve.mode == ApprovalMode::None && s->mint_hosts.empty()) {
    rep.flags |= wire::kReplyReuseOnConnection;
    a.grant = "connection";
  }
  rep.fp_base = ctx.table->fp_base();
  rep.fp_hash = live ? live->fp_hash : s->fp_hash;
  rep.fp_len = static_cast<std::uint32_t>(live ? live->value.size() : s->value.size());
  rep.fq_base = ctx.table->fq_base();
  rep.fq_hash = live ? live->fq_hash : s->fq_hash;
  const std::vector<wire::FormPrint>& forms = live ? live->forms : s->form_prints;
  rep.nforms = static_cast<std::uint32_t>(std::min(forms.size(), wire::kValueFormCount));
  for (std::size_t i = 0; i < rep.nforms; ++i) rep.forms[i] = forms[i];
  a.secret = s->name;
  a.token_id = s->token_id;
  a.decision = "allow";
  return out;
}

void settle_approval(DecideOutcome& out, const ApprovalAnswer& answer) {
  TokenUse& a = *out.audit;
  if (answer.verdict == ApprovalVerdict::Approved) {
    if (out.reply.decision != Decision::Allow) return;   // decided again: a refusal stands
    a.reason = "approved by " + (answer.by.empty() ? answer.channel : answer.by) + " (" + answer.channel + ")";
    return;
  }
  refuse_outcome(out, answer.verdict == ApprovalVerdict::Denied
                         ? a.secret.value_or("the secret") + ": the approval was denied (" + answer.channel + ")"
                         : a.secret.value_or("the secret") + ": no approval in time (" + answer.channel + ")");
}

DecideOutcome decide_answered(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer,
                              const ApprovalAnswer& answer) {
  DecideOutcome out = decide(ctx, req, peer);
  // Still waiting for an approval ("every", or one denied): the answer is this one, for
  // this very request.
  if (out.ask && out.ask->request_hash != answer.ask.request_hash)
    refuse_outcome(out, answer.ask.secret + ": the request no longer matches the one the approval was asked for");
  out.ask.reset();
  if (out.audit) settle_approval(out, answer);
  return out;
}

ApprovalEvent approval_event(const ApprovalAsk& ask, std::string decision, std::string channel) {
  ApprovalEvent e;
  e.secret = ask.secret;
  e.decision = std::move(decision);
  e.channel = std::move(channel);
  e.request_hash = ask.request_hash;
  e.host = ask.host;
  if (!ask.method.empty()) e.method = ask.method;
  if (!ask.path.empty()) e.path = ask.path;
  e.token_id = ask.token_id;
  e.pid = ask.pid;
  e.exe = ask.exe;
  return e;
}

void refuse_outcome(DecideOutcome& out, const std::string& why) {
  wire::Reply& rep = out.reply;
  explicit_bzero(rep.data, sizeof rep.data);
  rep.data_len = 0;
  rep.decision = Decision::Refuse;
  rep.flags = 0;
  rep.secret_id = 0;
  rep.fp_base = rep.fp_hash = rep.fq_base = rep.fq_hash = 0;
  rep.fp_len = rep.nforms = 0;
  set_reason(rep, why);
  if (!out.audit) return;
  TokenUse& a = *out.audit;
  a.decision = "refuse";
  a.grant.reset();
  a.reason = why;
}

}  // namespace kz
