// The shim's TLS witness (kz run with sensors, standard or blind): each outbound TLS
// write of this process is counted and scanned for the run's values with the keyed
// fingerprints kz sent (kz/preload/witness_wire.h), in process, before the library
// encrypts it. A sighting is reported to kz with where the connection goes, and the
// writer waits for kz's verdict: a leak is recorded (and with --on-leak=kill the write
// fails); a host bound to the secret is a use, and later uses of that (secret, host)
// are counted here and reported at exit. Each process says hello to kz when the shim loads: kz knows which processes the
// witness serves and probes the others from the kernel (launcher/sensors/run_sensors.h).
//
// Off (every call returns at once) without $KZ_WITNESS, under AT_SECURE, or when kz
// does not accept the process. The write path allocates nothing and takes no lock
// unless the write holds a sighting.
#pragma once

#include <cstddef>

#include "kz/preload/witness_wire.h"

namespace kz::preload {

bool witness_on();

// "KZ_WITNESS=<path>" as this process got it (nullptr without one): the exec hooks put it
// back into a child's environment the agent stripped, as they do LD_PRELOAD, so the child
// is witnessed by its shim rather than given uprobes as well.
const char* witness_env_entry();

// The hooks' check, first thing in SSL_write / SSL_write_ex / gnutls_record_send:
// true when the write must fail (the caller returns the library's failure; errno is
// EACCES).
bool witness_refuses_ossl(const void* ssl, const void* buf, std::size_t len, witness::Fn fn);
bool witness_refuses_gnutls(const void* session, const void* buf, std::size_t len);

}  // namespace kz::preload
