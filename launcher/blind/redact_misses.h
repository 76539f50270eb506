// The Redact operation asks the broker "is this a value of the run?" (the shim sends the
// bytes of a response that matched a value's fingerprint, and gets the token to show the
// agent instead). To a program that speaks the broker protocol itself, that is an
// oracle for guessing a value (a short password, a value known but for a few
// characters). A legitimate Redact misses only on a fingerprint collision, so every miss
// is audited, and a connection that misses kMaxRedactMisses times is closed.
#pragma once

#include "audit/audit_schema.h"
#include "secrets/decide.h"
#include "kz/wire/protocol.h"

namespace kz {

inline constexpr unsigned kMaxRedactMisses = 16;

// The record of the `miss`-th miss on a connection: who asked, for which host; never
// the bytes asked about.
TokenUse redact_miss_record(const wire::Request& req, const PeerProcess& peer, unsigned miss);

}  // namespace kz
