// The shim across fork() and process exit: what a child must not inherit (held locks,
// the parent's broker connections, the parent's grants), and the grant uses reported
// before the process goes.
#pragma once

namespace kz::preload {

// At load time (constructor), once.
void install_fork_handlers();

}  // namespace kz::preload
