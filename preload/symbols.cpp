#include "symbols.h"

#include <dlfcn.h>

namespace kz::preload {

void* resolve_symbol(const char* name, Lib lib) {
  void* p = dlsym(RTLD_NEXT, name);
  if (p != nullptr) return p;
  const char* const* names = nullptr;
  static const char* const ssl[] = {"libssl.so.3", nullptr};
  static const char* const crypto[] = {"libcrypto.so.3", nullptr};
  static const char* const gnutls[] = {"libgnutls.so.30", nullptr};
  switch (lib) {
    case Lib::Ssl: names = ssl; break;
    case Lib::Crypto: names = crypto; break;
    case Lib::Gnutls: names = gnutls; break;
    case Lib::Libc: return nullptr;
  }
  for (; *names != nullptr; ++names) {
    // RTLD_NOLOAD: only a library the program already has; never load one ourselves.
    void* h = dlopen(*names, RTLD_LAZY | RTLD_NOLOAD);
    if (h == nullptr) continue;
    p = dlsym(h, name);
    dlclose(h);   // drops the reference RTLD_NOLOAD added; the library stays loaded
    if (p != nullptr) return p;
  }
  return nullptr;
}

}  // namespace kz::preload
