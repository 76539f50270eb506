#include "session_facts.h"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "kz/wire/protocol.h"

namespace kz::preload {

namespace {

constexpr std::size_t kSlots = 1024;

struct Slot {
  std::atomic<std::uintptr_t> key{0};
  // Written under the mutex; name before its length is published.
  char name[wire::kMaxHost];
  std::atomic<std::size_t> name_len{0};
  std::atomic<int> fd{-1};
};

constinit Slot g_slots[kSlots] = {};
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

Slot* find(std::uintptr_t k) {
  for (Slot& s : g_slots)
    if (s.key.load(std::memory_order_acquire) == k) return &s;
  return nullptr;
}

// Caller holds g_mu. The slot of k, claimed if new; nullptr when the table is full.
Slot* claim(std::uintptr_t k) {
  if (Slot* s = find(k)) return s;
  Slot* s = find(0);
  if (s == nullptr) return nullptr;
  s->name_len.store(0, std::memory_order_relaxed);
  s->fd.store(-1, std::memory_order_relaxed);
  s->key.store(k, std::memory_order_release);
  return s;
}

}  // namespace

void session_name_set(const void* session, const char* name, std::size_t len) {
  const auto k = reinterpret_cast<std::uintptr_t>(session);
  if (k == 0 || name == nullptr || len == 0 || len > wire::kMaxHost) return;
  pthread_mutex_lock(&g_mu);
  if (Slot* s = claim(k)) {
    s->name_len.store(0, std::memory_order_release);
    std::memcpy(s->name, name, len);
    s->name_len.store(len, std::memory_order_release);
  }
  pthread_mutex_unlock(&g_mu);
}

std::size_t session_name_get(const void* session, char* out, std::size_t cap) {
  const auto k = reinterpret_cast<std::uintptr_t>(session);
  if (k == 0) return 0;
  const Slot* s = find(k);
  if (s == nullptr) return 0;
  const std::size_t len = s->name_len.load(std::memory_order_acquire);
  if (len == 0 || len > cap) return 0;
  std::memcpy(out, s->name, len);
  return len;
}

void session_fd_set(const void* session, int fd) {
  const auto k = reinterpret_cast<std::uintptr_t>(session);
  if (k == 0 || fd < 0) return;
  if (const Slot* s = find(k); s != nullptr && s->fd.load(std::memory_order_relaxed) == fd) return;
  pthread_mutex_lock(&g_mu);
  if (Slot* s = claim(k)) s->fd.store(fd, std::memory_order_release);
  pthread_mutex_unlock(&g_mu);
}

int session_fd_get(const void* session) {
  const auto k = reinterpret_cast<std::uintptr_t>(session);
  if (k == 0) return -1;
  const Slot* s = find(k);
  return s != nullptr ? s->fd.load(std::memory_order_acquire) : -1;
}

void session_forget(const void* session) {
  const auto k = reinterpret_cast<std::uintptr_t>(session);
  if (k == 0 || find(k) == nullptr) return;   // most sessions have no entry: no lock
  pthread_mutex_lock(&g_mu);
  if (Slot* s = find(k)) s->key.store(0, std::memory_order_release);
  pthread_mutex_unlock(&g_mu);
}

void session_facts_lock_for_fork() { pthread_mutex_lock(&g_mu); }
void session_facts_unlock_after_fork() { pthread_mutex_unlock(&g_mu); }
void session_facts_reset_after_fork() { pthread_mutex_init(&g_mu, nullptr); }

}  // namespace kz::preload
