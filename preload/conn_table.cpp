#include "kz/preload/conn_table.h"
#include "kz/preload/h2.h"

#include <cstring>
#include <new>

#include "kz/preload/scratch.h"

namespace kz::preload {

namespace {
constexpr std::uintptr_t kTombstone = 1;
}

void ConnState::add_fingerprint(const Fingerprint& f) {
  for (std::size_t i = 0; i < nfps; ++i)
    if (fps[i].hash == f.hash && fps[i].len == f.len && fps[i].base == f.base && fps[i].form == f.form) return;
  if (nfps < kMaxFingerprints) {
    fps[nfps++] = f;
    return;
  }
  std::memmove(fps, fps + 1, sizeof(Fingerprint) * (kMaxFingerprints - 1));
  fps[kMaxFingerprints - 1] = f;
}

void ConnState::set_request_line(const char* m, std::size_t ml, const char* p, std::size_t pl) {
  method_len = ml < sizeof method ? ml : sizeof method;
  std::memcpy(method, m, method_len);
  // A target longer than the field is not cut (a cut could hide a "/.." after the cut
  // from the broker's path check): it is left unknown, which a path rule refuses.
  path_len = pl <= sizeof path ? pl : 0;
  std::memcpy(path, p, path_len);
}

void ConnState::push_request(RequestKind k) {
  if (requests_unknown) return;   // the ring no longer follows the connection's order
  if (requests_count == kMaxPendingRequests) {
    requests_unknown = true;
    return;
  }
  requests[(requests_first + requests_count) % kMaxPendingRequests] = k;
  ++requests_count;
}

bool ConnState::pop_request(RequestKind* k) {
  if (requests_count == 0) return false;
  *k = requests[requests_first];
  requests_first = static_cast<std::uint32_t>((requests_first + 1) % kMaxPendingRequests);
  --requests_count;
  return true;
}

void ConnState::set_request_host(const char* h, std::size_t hl, unsigned host_count) {
  http_host_len = 0;
  request_flags &= static_cast<std::uint8_t>(~wire::kFlagHostInvalid);
  // Two Host headers (a server may take either), or one the broker cannot print: invalid.
  bool printable = hl <= sizeof http_host;
  for (std::size_t i = 0; printable && i < hl; ++i)
    printable = static_cast<unsigned char>(h[i]) > 0x20 && static_cast<unsigned char>(h[i]) < 0x7f;
  if (host_count > 1 || (host_count == 1 && (!printable || hl == 0))) {
    request_flags |= wire::kFlagHostInvalid;
    return;
  }
  if (host_count == 0) return;
  std::memcpy(http_host, h, hl);
  http_host_len = hl;
}

std::size_t ConnTable::slot_of(std::uintptr_t k) const {
  // Fibonacci hashing of the pointer (low bits are alignment zeros).
  return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 52) % kSlots;
}

ConnState* ConnTable::find(const void* key) const {
  const auto k = reinterpret_cast<std::uintptr_t>(key);
  if (k <= kTombstone) return nullptr;
  std::size_t s = slot_of(k);
  for (std::size_t probe = 0; probe < kSlots; ++probe, s = (s + 1) % kSlots) {
    const std::uintptr_t cur = keys_[s].load(std::memory_order_acquire);
    if (cur == 0) return nullptr;
    if (cur == k) return states_[s].load(std::memory_order_acquire);
  }
  return nullptr;
}

ConnState* ConnTable::find_or_create(const void* key) {
  if (ConnState* st = find(key)) return st;
  const auto k = reinterpret_cast<std::uintptr_t>(key);
  if (k <= kTombstone) return nullptr;
  pthread_mutex_lock(&mu_);
  ConnState* result = find(key);
  if (result == nullptr) {
    std::size_t s = slot_of(k);
    std::size_t free_slot = kSlots;
    for (std::size_t probe = 0; probe < kSlots; ++probe, s = (s + 1) % kSlots) {
      const std::uintptr_t cur = keys_[s].load(std::memory_order_relaxed);
      if (cur == kTombstone && free_slot == kSlots) free_slot = s;
      if (cur == 0) {
        if (free_slot == kSlots) free_slot = s;
        break;
      }
    }
    if (free_slot != kSlots) {
      void* mem = scratch_alloc(sizeof(ConnState));
      if (mem != nullptr) {
        result = new (mem) ConnState();
        result->conn_id = next_id_.fetch_add(1, std::memory_order_relaxed);
        states_[free_slot].store(result, std::memory_order_release);
        keys_[free_slot].store(k, std::memory_order_release);
        count_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  }
  pthread_mutex_unlock(&mu_);
  return result;
}

void ConnTable::remove(const void* key) {
  const auto k = reinterpret_cast<std::uintptr_t>(key);
  if (k <= kTombstone) return;
  pthread_mutex_lock(&mu_);
  std::size_t s = slot_of(k);
  for (std::size_t probe = 0; probe < kSlots; ++probe, s = (s + 1) % kSlots) {
    const std::uintptr_t cur = keys_[s].load(std::memory_order_relaxed);
    if (cur == 0) break;
    if (cur == k) {
      ConnState* st = states_[s].exchange(nullptr, std::memory_order_acq_rel);
      // Followed by an empty slot, this one ends every probe chain through it: empty it
      // and the tombstones before it, or else tombstones pile up until every miss probes
      // the whole table. No live key's chain crosses an empty slot, so none is cut.
      if (keys_[(s + 1) % kSlots].load(std::memory_order_relaxed) != 0) {
        keys_[s].store(kTombstone, std::memory_order_release);
      } else {
        keys_[s].store(0, std::memory_order_release);
        for (std::size_t b = (s + kSlots - 1) % kSlots, n = 1;
             n < kSlots && keys_[b].load(std::memory_order_relaxed) == kTombstone; b = (b + kSlots - 1) % kSlots, ++n)
          keys_[b].store(0, std::memory_order_release);
      }
      count_.fetch_sub(1, std::memory_order_acq_rel);
      // A reader inside (an h2 read waiting in the library without the state's lock)
      // frees it when it leaves (ReadLock); else it goes now.
      if (st != nullptr && st->readers.fetch_or(kReadersDropped, std::memory_order_acq_rel) == 0) destroy(st);
      break;
    }
  }
  pthread_mutex_unlock(&mu_);
}

void ConnTable::destroy(ConnState* st) {
  scratch_free(st->held, st->held_cap);
  h2_conn_free(st->h2);
  st->~ConnState();
  scratch_free(st, sizeof(ConnState));   // wipes carry, fingerprints, request line
}

void ConnTable::lock_for_fork() { pthread_mutex_lock(&mu_); }
void ConnTable::unlock_after_fork() { pthread_mutex_unlock(&mu_); }
void ConnTable::reset_lock_after_fork() { pthread_mutex_init(&mu_, nullptr); }

namespace {
// Constant-initialised: no constructor at load time, nothing registered with atexit.
constinit ConnTable g_table;
}  // namespace

ConnTable& conn_table() { return g_table; }

}  // namespace kz::preload
