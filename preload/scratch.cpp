#include "kz/preload/scratch.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

namespace kz::preload {

namespace {
std::size_t round_up(std::size_t n) {
  const std::size_t page = 4096;
  return (n + page - 1) & ~(page - 1);
}
}  // namespace

void* scratch_alloc(std::size_t n) {
  if (n == 0) n = 1;
  void* p = mmap(nullptr, round_up(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, round_up(n), MADV_DONTDUMP);
  return p;
}

void scratch_free(void* p, std::size_t n) {
  if (p == nullptr) return;
  if (n == 0) n = 1;
  explicit_bzero(p, round_up(n));
  munmap(p, round_up(n));
}

bool scratch_grow(void** p, std::size_t* cap, std::size_t used, std::size_t want) {
  if (*p != nullptr && *cap >= want) return true;
  std::size_t ncap = *cap == 0 ? 4096 : *cap;
  while (ncap < want) ncap *= 2;
  void* np = scratch_alloc(ncap);
  if (np == nullptr) return false;
  if (*p != nullptr) {
    if (used > 0) memcpy(np, *p, used);
    scratch_free(*p, *cap);
  }
  *p = np;
  *cap = ncap;
  return true;
}

namespace {

// Mappings kept for reuse, each with its capacity in the first word. Lock-free: a slot
// is taken and filled with one atomic exchange / compare-exchange.
constexpr std::size_t kCacheSlots = 4;
constexpr std::size_t kCacheMax = std::size_t{1} << 20;   // larger mappings are unmapped
constexpr std::size_t kHeader = 64;
constinit std::atomic<void*> g_cache[kCacheSlots] = {};

}  // namespace

void* scratch_take(std::size_t n, std::size_t* cap) {
  for (auto& slot : g_cache) {
    void* m = slot.exchange(nullptr, std::memory_order_acquire);
    if (m == nullptr) continue;
    const std::size_t c = *static_cast<std::size_t*>(m);
    if (c >= n + kHeader) {
      *cap = c;
      return static_cast<char*>(m) + kHeader;
    }
    scratch_free(m, c);   // too small for this request: make room for a bigger one
  }
  std::size_t want = n + kHeader < 65536 ? 65536 : round_up(n + kHeader);
  void* m = scratch_alloc(want);
  if (m == nullptr) return nullptr;
  *static_cast<std::size_t*>(m) = want;
  *cap = want;
  return static_cast<char*>(m) + kHeader;
}

void scratch_give(void* p, std::size_t cap, std::size_t used) {
  if (p == nullptr) return;
  void* m = static_cast<char*>(p) - kHeader;
  explicit_bzero(p, used < cap - kHeader ? used : cap - kHeader);
  if (cap <= kCacheMax) {
    for (auto& slot : g_cache) {
      void* expected = nullptr;
      if (slot.compare_exchange_strong(expected, m, std::memory_order_release)) return;
    }
  }
  scratch_free(m, cap);
}

}  // namespace kz::preload
