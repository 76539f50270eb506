#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "shim.h"

namespace kz::preload {

namespace {
std::atomic<bool> g_logged{false};
}

void log_once(const char* msg) {
  if (g_logged.exchange(true)) return;
  char line[512];
  std::size_t n = 0;
  const char* parts[] = {"kz: ", msg, "\n"};
  for (const char* p : parts) {
    const std::size_t l = std::strlen(p);
    const std::size_t c = l < sizeof line - n ? l : sizeof line - n;
    std::memcpy(line + n, p, c);
    n += c;
  }
  // Raw system call: no stdio buffers, and not through our own write() hook.
  (void)!syscall(SYS_write, 2, line, n);
}

}  // namespace kz::preload
