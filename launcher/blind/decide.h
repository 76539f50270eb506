// The broker's decision for one shim request: swap a token for its value, confirm an
// inbound value for redaction, or record a refusal. Pure apart from certificate
// verification; the socket server (broker.h) feeds it and sends the reply.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "blind/peer_verify.h"
#include "blind/token_table.h"
#include "kz/wire/protocol.h"

namespace kz {

struct PeerProcess {
  pid_t pid = 0;               // from SO_PEERCRED
  std::string exe;             // /proc/PID/exe
};

struct DecideContext {
  const TokenTable* table = nullptr;
  PeerVerifier* verifier = nullptr;
  bool grant_connections = true;   // [blind] reuse = "connection"
};

struct DecideOutcome {
  wire::Reply reply{};         // ready to send (data holds the value on a swap: wipe after)
  nlohmann::json audit;        // null when the answer is not an audit event (Incomplete)
};

// `req` has passed wire::request_is_valid.
DecideOutcome decide(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer);

}  // namespace kz
