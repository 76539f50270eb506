// The broker's decision on an AWS SigV4 request (wire::Op::Sign, issue 17): the agent's
// SDK signed it with a token as its secret key; kz holds the real key and returns only
// the real signature. See docs/aws.md.
//
// Order of checks: whose key (the credential scope's access key id must be a sign =
// "sigv4" secret's, else the request is not kz's business: Unknown, no record); the
// same request checks as a swap (request_refusal: TLS, the connection's safety, host,
// certificate, domain fronting, methods, paths); the scope's service and region; the
// request's date within 15 minutes of kz's clock; a payload kz can hash; then kz
// rebuilds the canonical request from the head as sent and must reproduce the agent's
// own signature with the token (so the request signed is exactly the one sent, built the
// way the SDK built it). Only then does it sign, with the session token's value in
// place of its token.
#pragma once

#include "audit/audit_schema.h"
#include "kz/wire/protocol.h"
#include "secrets/decide.h"

namespace kz {

// How far a request's x-amz-date may be from kz's clock (AWS allows 15 minutes).
inline constexpr std::int64_t kSigV4MaxSkewSeconds = 15 * 60;
// The longest a presigned URL kz signs may stay valid (X-Amz-Expires; boto3's default):
// the URL is a credential that works from anywhere until then, kz or not.
inline constexpr std::int64_t kSigV4MaxPresignSeconds = 60 * 60;

// Fills rep (Allow: data = the signature, token_len = its offset in the head) and the
// record `a`. false: no secret of this run has the request's access key id (no record).
bool decide_sign(const DecideContext& ctx, const wire::Request& req, wire::Reply& rep, TokenUse& a);

}  // namespace kz
