// Scratch memory for plaintext that holds a secret value for a moment (a rewritten TLS
// write, a held request). mmap'd so it can be excluded from core dumps (MADV_DONTDUMP)
// and wiped before it is returned; never the malloc heap, where freed copies linger.
#pragma once

#include <cstddef>

namespace kz::preload {

// Page-rounded anonymous mapping, MADV_DONTDUMP. nullptr on failure.
void* scratch_alloc(std::size_t n);
// Wipes (explicit_bzero) and unmaps. Accepts nullptr.
void scratch_free(void* p, std::size_t n);
// Grow a scratch mapping to at least `want` bytes, keeping the first `used` bytes; the
// old mapping is wiped. Updates *p and *cap; false (nothing changed) on failure.
bool scratch_grow(void** p, std::size_t* cap, std::size_t used, std::size_t want);

// Scratch for one rewrite, from a small process-wide cache of mappings (a write with a
// token needs two; mmap/munmap and the page faults of fresh pages would cost more than
// the rewrite). Wiped (its first n bytes, all the user could touch) before it goes back.
// nullptr / false on failure.
void* scratch_take(std::size_t n, std::size_t* cap);
void scratch_give(void* p, std::size_t cap, std::size_t used);

// RAII holder for one scratch buffer of n bytes.
class Scratch {
 public:
  explicit Scratch(std::size_t n) : n_(n), p_(static_cast<char*>(scratch_take(n, &cap_))) {}
  ~Scratch() { scratch_give(p_, cap_, n_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  char* get() const { return p_; }
  std::size_t size() const { return n_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  std::size_t n_;
  std::size_t cap_ = 0;
  char* p_;
};

}  // namespace kz::preload
