#include "scratch.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

}  // namespace kz::preload
