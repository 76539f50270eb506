// Exec inheritance: a child the agent starts with a cleaned environment (env -i, a
// sandbox wrapper, subprocess with env={...}) must still have the shim and find the
// broker, or its TLS writes would carry bare tokens. The exec hooks pass the envp through
// fix_envp, which adds what is missing. No allocation: the hooks may run in a vfork
// child, so the new array and the LD_PRELOAD string live in caller-provided memory.
#pragma once

#include <cstddef>

namespace kz::preload {

struct EnvAdditions {
  const char* preload_path = nullptr;  // our .so (absolute)
  const char* broker_entry = nullptr;  // "KZ_BROKER=..."
  const char* preload_entry = nullptr; // "KZ_PRELOAD=..."
  const char* fixup_entry = nullptr;   // "KZ_FIXUP_LENGTHS=1", or nullptr when not set
  const char* witness_entry = nullptr; // "KZ_WITNESS=...", or nullptr without the sensors' witness
};

// Does the LD_PRELOAD value (':' or ' ' separated) list `lib`?
bool preload_list_has(const char* value, const char* lib);

// How many entries the fixed array may need: count(envp) + 6.
std::size_t fix_envp_capacity(char* const* envp);

// Writes the fixed environment into out (capacity cap entries, NULL-terminated) and
// returns true, or returns false when envp already has everything (use it unchanged) or
// the output would not fit. ld_buf (ld_cap bytes) receives a new "LD_PRELOAD=..." when
// the existing one lacks our library.
bool fix_envp(char* const* envp, const EnvAdditions& add, const char** out, std::size_t cap, char* ld_buf,
              std::size_t ld_cap);

}  // namespace kz::preload
