// Sealing a token endpoint's answer (the agent's own OAuth token request, blind mode).
// On a connection where a client secret with mint_hosts went out (ConnState::seal_secret,
// set from the broker's kReplySealResponses), each HTTP/1.1 response is held until it is
// complete (inbound.cpp), then its tokens go to the broker (wire::Op::Seal), which keeps
// them and answers with new tokens of the same length, written in place: the body's
// framing (Content-Length, chunk sizes) never changes. Only those tokens reach the program.
//
// The agent writes the token request, so it picks the answer's format: a response is
// released only in a form whose every possible token is sealed (fail closed):
//  - JSON (application/json, *+json, or no Content-Type and a body starting with '{'):
//    the string values of "access_token", "refresh_token", "id_token" are sealed, and so
//    is every other string value of 16 bytes or more, at any depth, except those of the
//    known non-secret members (token_type, issued_token_type, expires_in, scope, error,
//    error_description, error_uri);
//  - form-encoded (application/x-www-form-urlencoded, as GitHub answers without
//    Accept: application/json): access_token=/refresh_token=/id_token= values are sealed;
//    any other value of 16 bytes or more that is not a non-secret member fails;
//  - no body: released (a 1xx, 204, an empty error).
// Everything else fails the read: another content type, JSON or a form that does not
// parse, a Location with a fragment or a query that carries a token or a long value, a
// value that cannot be sealed (the broker refuses, it is shorter than a kz token, it holds
// a JSON escape or a percent-encoding), a response too large to hold. Not sealed: HTTP/2
// responses (no swap arms sealing there: the shim refuses swaps on a connection that
// negotiated h2); content-coded ones fail as any coded response on a connection that
// carries a value does. Response headers other than Location are not examined (a token
// endpoint's server picks those, not the agent).
#pragma once

#include <cstddef>

#include "kz/preload/conn_table.h"
#include "kz/preload/outbound.h"

namespace kz::preload {

// p[0, n) is one whole HTTP/1.1 response: its head and its body's data bytes (chunk
// framing removed). Seals its tokens in place (above). Returns false when the response
// must not reach the program (the caller fails the read); true otherwise.
bool seal_response(unsigned char* p, std::size_t n, ConnState* st, const BrokerOps& b);

}  // namespace kz::preload
