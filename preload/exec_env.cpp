#include "kz/preload/exec_env.h"

#include <cstring>

namespace kz::preload {

namespace {

bool has_name(const char* entry, const char* name, std::size_t nl) {
  return std::strncmp(entry, name, nl) == 0 && entry[nl] == '=';
}

std::size_t name_len(const char* entry) {
  const char* eq = std::strchr(entry, '=');
  return eq ? static_cast<std::size_t>(eq - entry) : std::strlen(entry);
}

}  // namespace

bool preload_list_has(const char* value, const char* lib) {
  const std::size_t ll = std::strlen(lib);
  if (ll == 0) return false;
  for (const char* p = value; *p;) {
    while (*p == ':' || *p == ' ') ++p;
    const char* e = p;
    while (*e && *e != ':' && *e != ' ') ++e;
    if (static_cast<std::size_t>(e - p) == ll && std::strncmp(p, lib, ll) == 0) return true;
    p = e;
  }
  return false;
}

std::size_t fix_envp_capacity(char* const* envp) {
  std::size_t n = 0;
  if (envp != nullptr)
    while (envp[n] != nullptr) ++n;
  return n + 6;
}

bool fix_envp(char* const* envp, const EnvAdditions& add, const char** out, std::size_t cap, char* ld_buf,
              std::size_t ld_cap) {
  if (add.preload_path == nullptr || add.broker_entry == nullptr) return false;
  constexpr int kEntries = 4;
  const char* entries[kEntries] = {add.broker_entry, add.preload_entry, add.fixup_entry, add.witness_entry};
  bool present[kEntries] = {false, false, false, false};
  const char* ld = nullptr;
  std::size_t n = 0;
  if (envp != nullptr) {
    for (; envp[n] != nullptr; ++n) {
      const char* e = envp[n];
      if (has_name(e, "LD_PRELOAD", 10)) ld = e;
      for (int i = 0; i < kEntries; ++i)
        if (entries[i] != nullptr && !present[i] && has_name(e, entries[i], name_len(entries[i]))) present[i] = true;
    }
  }
  const bool ld_ok = ld != nullptr && preload_list_has(ld + 11, add.preload_path);
  bool missing = !ld_ok;
  for (int i = 0; i < kEntries; ++i) missing = missing || (entries[i] != nullptr && !present[i]);
  if (!missing || n + 6 > cap) return false;

  const char* new_ld = ld;
  if (!ld_ok) {
    // "LD_PRELOAD=<ours>[:<existing>]": ours first, so it interposes before the others.
    const char* existing = ld != nullptr ? ld + 11 : "";
    const std::size_t need = 11 + std::strlen(add.preload_path) + 1 + std::strlen(existing) + 1;
    if (need > ld_cap) return false;
    std::strcpy(ld_buf, "LD_PRELOAD=");
    std::strcat(ld_buf, add.preload_path);
    if (*existing) {
      std::strcat(ld_buf, ":");
      std::strcat(ld_buf, existing);
    }
    new_ld = ld_buf;
  }
  std::size_t o = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (envp[i] == ld) continue;
    out[o++] = envp[i];
  }
  out[o++] = new_ld;
  for (int i = 0; i < kEntries; ++i)
    if (entries[i] != nullptr && !present[i]) out[o++] = entries[i];
  out[o] = nullptr;
  return true;
}

}  // namespace kz::preload
