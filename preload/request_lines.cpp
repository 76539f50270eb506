#include "kz/preload/request_lines.h"

#include <cstring>

namespace kz::preload {

std::size_t RequestLines::slot_of(const void* key) {
  const auto k = reinterpret_cast<std::uintptr_t>(key);
  return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 56) % kSlots;
}

void RequestLines::note(const void* key, const char* p, std::size_t n) {
  if (key == nullptr) return;
  // "METHOD SP target SP": the method is at most kMaxMethod bytes, the target ends at
  // the next space (within the buffer and kMaxTarget).
  std::size_t ml = 0;
  while (ml < n && ml <= kMaxMethod && p[ml] != ' ') ++ml;
  const bool method_ok = ml > 0 && ml <= kMaxMethod && ml < n;
  const char* target = p + ml + 1;
  const std::size_t avail = method_ok ? n - ml - 1 : 0;
  const void* sp = method_ok ? std::memchr(target, ' ', avail < kMaxTarget + 1 ? avail : kMaxTarget + 1) : nullptr;
  const std::size_t tl = sp != nullptr ? static_cast<std::size_t>(static_cast<const char*>(sp) - target) : 0;

  Slot& s = slots_[slot_of(key)];
  std::uint32_t seq = s.seq.load(std::memory_order_relaxed);
  // Another thread is writing this slot: give up (the line is then unknown: fail closed).
  if ((seq & 1) != 0 || !s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) return;
  if (sp == nullptr || tl == 0) {
    s.key.store(0, std::memory_order_relaxed);   // an older line of this key must not linger
  } else {
    unsigned char buf[kWords * 8] = {};
    std::memcpy(buf, p, ml);
    std::memcpy(buf + ml, target, tl);
    const std::size_t words = (ml + tl + 7) / 8;
    for (std::size_t i = 0; i < words; ++i) {
      std::uint64_t w;
      std::memcpy(&w, buf + 8 * i, 8);
      s.data[i].store(w, std::memory_order_relaxed);
    }
    s.lens.store(static_cast<std::uint32_t>(ml << 16 | tl), std::memory_order_relaxed);
    s.key.store(reinterpret_cast<std::uintptr_t>(key), std::memory_order_relaxed);
  }
  s.seq.store(seq + 2, std::memory_order_release);
}

bool RequestLines::get(const void* key, char* method, std::size_t* method_len, char* target,
                       std::size_t* target_len) const {
  if (key == nullptr) return false;
  const Slot& s = slots_[slot_of(key)];
  const std::uint32_t seq = s.seq.load(std::memory_order_acquire);
  if ((seq & 1) != 0 || s.key.load(std::memory_order_relaxed) != reinterpret_cast<std::uintptr_t>(key)) return false;
  const std::uint32_t lens = s.lens.load(std::memory_order_relaxed);
  const std::size_t ml = lens >> 16, tl = lens & 0xffff;
  if (ml == 0 || ml > kMaxMethod || tl == 0 || tl > kMaxTarget) return false;
  unsigned char buf[kWords * 8];
  const std::size_t words = (ml + tl + 7) / 8;
  for (std::size_t i = 0; i < words; ++i) {
    const std::uint64_t w = s.data[i].load(std::memory_order_relaxed);
    std::memcpy(buf + 8 * i, &w, 8);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  if (s.seq.load(std::memory_order_relaxed) != seq) return false;   // overwritten meanwhile
  std::memcpy(method, buf, ml);
  std::memcpy(target, buf + ml, tl);
  *method_len = ml;
  *target_len = tl;
  return true;
}

void RequestLines::forget(const void* key) {
  if (key == nullptr) return;
  Slot& s = slots_[slot_of(key)];
  if (s.key.load(std::memory_order_relaxed) != reinterpret_cast<std::uintptr_t>(key)) return;
  std::uint32_t seq = s.seq.load(std::memory_order_relaxed);
  if ((seq & 1) != 0 || !s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) return;
  if (s.key.load(std::memory_order_relaxed) == reinterpret_cast<std::uintptr_t>(key))
    s.key.store(0, std::memory_order_relaxed);
  s.seq.store(seq + 2, std::memory_order_release);
}

namespace {
constinit RequestLines g_lines;
}

RequestLines& request_lines() { return g_lines; }

}  // namespace kz::preload
