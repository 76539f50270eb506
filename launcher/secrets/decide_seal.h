// The broker's decision on a token endpoint's answer (wire::Op::Seal): the agent sent a
// client secret with mint_hosts to its token endpoint (a swap that armed sealing on the
// connection, wire::kReplySealResponses), and the shim found a token in the JSON answer.
// kz keeps that value in its token table (an entry issued at runtime, like MCP's), bound
// to the client secret's mint_hosts, and answers with a new token of the value's length,
// which is all the agent ever sees. A later swap of that token checks it like any other.
//
// Checks: the arming secret (req.form) is a client secret of this run with mint_hosts;
// the connection passes the same request checks as that secret's swap (request_refusal:
// TLS, the connection's safety, host, certificate, domain fronting, methods, paths), so
// only an answer from the token endpoint's verified host is sealed; the value is at
// least wire::kMinTokenLen bytes (a token as long as a shorter value would be guessable).
#pragma once

#include "audit/audit_schema.h"
#include <memory>
#include <string>
#include <string_view>

#include "kz/wire/protocol.h"
#include "secrets/decide.h"

namespace kz {

// How long a sealed token stays usable: a day, as long as a token endpoint's access token
// commonly lives (its own expiry is the endpoint's business; a refused upstream call says
// so). Bounded so that entries made by any process that calls Op::Seal do not pile up.
inline constexpr std::int64_t kSealedTokenSeconds = 24 * 3600;

// The owner of the entries sealed for one client secret: each client secret has the token
// table's per-owner quota (IssueLimits::max_per_owner) of its own, so one flooded with
// Op::Seal calls does not stop the seals of another.
std::string sealed_owner(const std::string& client_secret_name);

// Fills rep (Allow: data = the new token) and the record `m`.
void decide_seal(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer, wire::Reply& rep,
                 OAuthMint& m);

// The sealed entry whose value, encoded in `form`, is exactly `bytes` (for inbound
// redaction of a server that echoes it); null when none.
std::shared_ptr<const TokenEntry> find_sealed_value(const TokenTable& table, std::string_view bytes, wire::ValueForm form,
                                                    std::int64_t now);

}  // namespace kz
