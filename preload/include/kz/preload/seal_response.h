// Sealing a token endpoint's answer (the agent's own OAuth token request, blind mode).
// On a connection where a client secret with mint_hosts went out (ConnState::seal_secret,
// set from the broker's kReplySealResponses), each HTTP/1.1 response is held until it is
// complete (inbound.cpp), then the string values of its JSON members "access_token",
// "refresh_token" and "id_token" go to the broker (wire::Op::Seal), which keeps them and
// answers with new tokens of the same length, written in place: the body's framing
// (Content-Length, chunk sizes) never changes. Only those tokens reach the program.
//
// Fail closed: a value that cannot be sealed (the broker refuses, it is too short for a
// token of its own length, it holds a JSON escape, the response is too large to hold)
// fails the read instead of reaching the program. Not sealed: HTTP/2 responses (no swap
// arms sealing there: the shim refuses swaps on a connection that negotiated h2),
// form-encoded token responses, content-coded ones (they fail as any coded response on
// a connection that carries a value does).
#pragma once

#include <cstddef>

#include "kz/preload/conn_table.h"
#include "kz/preload/outbound.h"

namespace kz::preload {

// Seals every token member of the JSON in p[0, n) in place. Returns false when one could
// not be sealed (the caller fails the read); true otherwise (also when there was none).
bool seal_response(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b);

}  // namespace kz::preload
