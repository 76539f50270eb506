#pragma once

namespace kz {

// Make the launcher non-dumpable (no core dump, no ptrace attach by same-uid processes,
// /proc/PID/mem and environ unreadable to others) and set its core size limit to 0.
// Called before any secret is resolved.
void harden_process();

}  // namespace kz
