// The broker's decision for one shim request: swap a token for its value, confirm an
// inbound value for redaction, or record a refusal. Pure apart from certificate
// verification and the canary alarm (a canary's token is always refused, and raised);
// the socket server (broker.h) feeds it and sends the reply.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_schema.h"
#include "secrets/approval.h"
#include "secrets/canary.h"
#include "secrets/peer_verify.h"
#include "secrets/process_tree.h"
#include "secrets/token_table.h"
#include "kz/wire/protocol.h"

namespace kz {

struct PeerProcess {
  pid_t pid = 0;               // from SO_PEERCRED
  std::string exe;             // /proc/PID/exe
  // From the process sensor, root first (["bash", "python3", "curl"]); empty without one.
  std::vector<std::string> lineage{};   // (an initializer: {pid, exe} aggregates stay warning-free)
};

struct DecideContext {
  const TokenTable* table = nullptr;
  PeerVerifier* verifier = nullptr;
  bool grant_connections = true;   // [blind] reuse = "connection"
  // The run's processes: where the proxy's records get their lineage (none when null).
  const ProcessTree* tree = nullptr;
  // Raised when a request carries a canary's token (none: only the refusal is recorded).
  CanaryAlarm* canary = nullptr;
  const char* via = "shim";        // who asks: "shim" (the broker) or "proxy"
  // Unix seconds to judge SigV4 request dates by; 0: the clock (tests set it).
  std::int64_t now = 0;
  // Where tokens sealed from token endpoint answers go (decide_seal.h): the run's own
  // table (its issued entries); null: nothing is sealed.
  TokenTable* sealed = nullptr;
  // approve = ... (secrets/approval.h): where a use that needs a person's approval is
  // asked for. Null: such a use is refused (nobody could answer).
  ApprovalGate* approvals = nullptr;
  // For a caller that holds uses itself (the proxy): the channels its "asked" records
  // name, and whether it records the answers too (no broker runs to take them:
  // --blind=proxy).
  std::string approval_channels{};
  bool record_approval_answers = false;
  // Gets each value sealed from a token endpoint's answer (for output masks); may be empty.
  std::function<void(std::string_view)> on_sealed = nullptr;
};

struct DecideOutcome {
  wire::Reply reply{};         // ready to send (data holds the value on a swap: wipe after)
  std::optional<TokenUse> audit;   // empty when the answer is not an audit event (Incomplete)
  std::optional<OAuthMint> mint;   // a Seal's record (decide_seal.h)
  // An Allow that waits for a person (approve = ...): the caller holds the request (not
  // the reply: blind/broker.cpp) until the gate answers this ask, then decides it again
  // and sends the reply (approved) or a refusal (settle_approval).
  std::optional<ApprovalAsk> ask;
};

// Turns a held outcome into what the gate's answer makes of it: approved, the reply and
// record stand (the record names the approval); denied or timed out, the value is wiped
// from the reply and the swap is refused (fail closed).
void settle_approval(DecideOutcome& out, const ApprovalAnswer& answer);
// A held request once its ask is answered: decided again (the value and the binding of
// this moment), refused when it now asks for another approval than the one answered,
// then settled by the answer. What the broker sends a held shim and the proxy writes.
DecideOutcome decide_answered(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer,
                              const ApprovalAnswer& answer);
// The "approve" record of an ask: asked, or its answer's verdict.
ApprovalEvent approval_event(const ApprovalAsk& ask, std::string decision, std::string channel);
// Turns an outcome into a refusal for `why`: the value is wiped from the reply, the
// record says refuse.
void refuse_outcome(DecideOutcome& out, const std::string& why);

// Why a request may not use secret `s` (its channel, the connection's safety, the
// host binding, the peer's certificate, domain fronting, methods and paths); empty when
// it may. One check for swaps and signatures (`signing`: the request is to be signed with
// s, a sign = "sigv4" key, which a swap would refuse to send).
std::string request_refusal(const DecideContext& ctx, const wire::Request& req, const TokenEntry& s, bool signing);

// `req` has passed wire::request_is_valid.
// Swap: the value for a token. Sign: an AWS SigV4 signature made with a key kz holds
// (decide_sign.h). Report and Redact: audit records and inbound redaction.
DecideOutcome decide(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer);

}  // namespace kz
