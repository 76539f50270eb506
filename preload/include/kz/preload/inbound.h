// Inbound redaction: a server that echoes a real value back (an error message quoting
// the Authorization header) must not hand it to the agent. After each successful read
// the buffer is scanned for the connection's value fingerprints (Rabin-Karp, see
// kz/wire/fingerprint.h); a candidate goes to the broker, which confirms the bytes and
// answers with the same-length replacement, written over them in place.
// Only within one read buffer: a value split across two reads is not caught here (the
// launcher's output masking still masks it in the agent's stdout/stderr).
#pragma once

#include <cstddef>

#include "kz/preload/outbound.h"

namespace kz::preload {

// Returns the number of replaced candidates.
std::size_t redact_buffer(unsigned char* p, std::size_t n, const Fingerprint* fps, std::size_t nfps,
                          const BrokerOps& b, ConnState* st);

// After a successful read of n bytes into buf on the connection `key`.
void inbound_after_read(ConnTable& t, const void* key, void* buf, std::size_t n, const BrokerOps& b);

}  // namespace kz::preload
