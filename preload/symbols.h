// The real functions behind the hooks, found lazily with dlsym(RTLD_NEXT). The TLS
// library may be loaded after the shim (Python's _ssl, git-remote-https, wget plugins):
// a library dlopen'ed with RTLD_LOCAL is not in RTLD_NEXT's scope, so the lookup falls
// back to a handle of the already-loaded library (dlopen RTLD_NOLOAD). The shim never
// links libssl or GnuTLS itself.
#pragma once

#include <atomic>

namespace kz::preload {

enum class Lib { Libc, Ssl, Crypto, Gnutls };

void* resolve_symbol(const char* name, Lib lib);

template <class F>
F cached_symbol(std::atomic<void*>& slot, const char* name, Lib lib) {
  void* p = slot.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = resolve_symbol(name, lib);
    if (p != nullptr) slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<F>(p);
}

}  // namespace kz::preload

// REAL(lib, fn): the real `fn`, typed like our declaration of it; nullptr if not loaded.
#define KZ_REAL(lib, fn)                                                            \
  ([]() {                                                                           \
    static std::atomic<void*> slot{nullptr};                                        \
    return ::kz::preload::cached_symbol<decltype(&fn)>(slot, #fn, ::kz::preload::Lib::lib); \
  }())
