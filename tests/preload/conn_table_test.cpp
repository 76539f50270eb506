// The per-connection table: lock-free lookup, insert/remove, tombstones, wiping.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kz/preload/conn_table.h"
#include "kz/preload/scratch.h"

namespace kz::preload {
namespace {

// Keys are opaque pointers (SSL*); any value > 1 works. Spread like heap pointers.
const void* key(std::uintptr_t i) { return reinterpret_cast<const void*>(0x10000 + i * 48); }

// The table is large (kSlots atomics): keep it off the stack.
std::unique_ptr<ConnTable> make_table() { return std::make_unique<ConnTable>(); }

TEST(ConnTable, EmptyTable) {
  auto t = make_table();
  EXPECT_EQ(t->count(), 0u);
  EXPECT_EQ(t->find(key(1)), nullptr);
  t->remove(key(1));   // removing a missing key is harmless
  EXPECT_EQ(t->count(), 0u);
}

TEST(ConnTable, FindOrCreateFindRemove) {
  auto t = make_table();
  ConnState* a = t->find_or_create(key(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(t->count(), 1u);
  EXPECT_EQ(t->find(key(1)), a);
  EXPECT_EQ(t->find_or_create(key(1)), a);   // no second entry
  EXPECT_EQ(t->count(), 1u);
  // A fresh entry is zeroed.
  EXPECT_EQ(a->carry_len, 0u);
  EXPECT_EQ(a->held, nullptr);
  EXPECT_EQ(a->held_len, 0u);
  EXPECT_EQ(a->nfps, 0u);
  EXPECT_EQ(a->method_len, 0u);
  EXPECT_FALSE(a->chunked_body);
  EXPECT_FALSE(a->has_outbound_state());
  EXPECT_NE(a->conn_id, 0u);

  ConnState* b = t->find_or_create(key(2));
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(a->conn_id, b->conn_id);
  EXPECT_EQ(t->count(), 2u);

  t->remove(key(1));
  EXPECT_EQ(t->count(), 1u);
  EXPECT_EQ(t->find(key(1)), nullptr);
  EXPECT_EQ(t->find(key(2)), b);
  t->remove(key(1));   // twice
  EXPECT_EQ(t->count(), 1u);
  t->remove(key(2));
  EXPECT_EQ(t->count(), 0u);
}

TEST(ConnTable, NullAndTombstoneKeysAreRejected) {
  auto t = make_table();
  EXPECT_EQ(t->find_or_create(nullptr), nullptr);
  EXPECT_EQ(t->find_or_create(reinterpret_cast<const void*>(1)), nullptr);
  EXPECT_EQ(t->count(), 0u);
  EXPECT_EQ(t->find(nullptr), nullptr);
}

TEST(ConnTable, ConnIdsAreFreshAfterReuse) {
  auto t = make_table();
  ConnState* a = t->find_or_create(key(7));
  ASSERT_NE(a, nullptr);
  const std::uint64_t id1 = a->conn_id;
  a->carry_len = 3;
  t->remove(key(7));
  ConnState* b = t->find_or_create(key(7));   // the same key again (a new SSL* at the same address)
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b->conn_id, id1);
  EXPECT_EQ(b->carry_len, 0u);   // nothing of the old connection survives
}

TEST(ConnTable, TombstoneReuseKeepsProbeChainsIntact) {
  auto t = make_table();
  // Many keys, so that probe chains form (collisions are certain with 3000 of 4096).
  constexpr std::size_t kN = 3000;
  std::vector<ConnState*> st(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    st[i] = t->find_or_create(key(i));
    ASSERT_NE(st[i], nullptr) << i;
    st[i]->carry_len = i;   // a marker per entry
  }
  EXPECT_EQ(t->count(), kN);
  std::set<ConnState*> distinct(st.begin(), st.end());
  EXPECT_EQ(distinct.size(), kN);
  // Remove every other key: the rest must still be found past the tombstones.
  for (std::size_t i = 0; i < kN; i += 2) t->remove(key(i));
  EXPECT_EQ(t->count(), kN / 2);
  for (std::size_t i = 0; i < kN; ++i) {
    ConnState* s = t->find(key(i));
    if (i % 2 == 0) {
      EXPECT_EQ(s, nullptr) << i;
    } else {
      ASSERT_EQ(s, st[i]) << i;
      EXPECT_EQ(s->carry_len, i);
    }
  }
  // New keys take tombstones; old and new are all found.
  for (std::size_t i = 0; i < kN; i += 2) {
    ConnState* s = t->find_or_create(key(100000 + i));
    ASSERT_NE(s, nullptr);
    s->carry_len = 100000 + i;
  }
  EXPECT_EQ(t->count(), kN);
  for (std::size_t i = 1; i < kN; i += 2) EXPECT_EQ(t->find(key(i))->carry_len, i);
  for (std::size_t i = 0; i < kN; i += 2) {
    ConnState* s = t->find(key(100000 + i));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->carry_len, 100000 + i);
  }
  for (std::size_t i = 1; i < kN; i += 2) t->remove(key(i));
  for (std::size_t i = 0; i < kN; i += 2) t->remove(key(100000 + i));
  EXPECT_EQ(t->count(), 0u);
}

TEST(ConnTable, RandomInsertRemoveMatchesAModel) {
  // Random inserts and removes of pointer-like keys (dense enough for long probe chains
  // and wrap-around at the end of the table), checked against a std::map after every
  // step: each live key finds its own entry, each removed key finds nothing.
  auto t = make_table();
  std::mt19937_64 rng(1234);
  std::vector<const void*> keys;
  for (std::size_t i = 0; i < 3500; ++i)
    keys.push_back(reinterpret_cast<const void*>(0x7f0000000000ull + (rng() & 0xffffff) * 16 + 16));
  std::map<const void*, ConnState*> live;
  for (int step = 0; step < 20000; ++step) {
    const void* k = keys[rng() % keys.size()];
    if (rng() % 2 == 0) {
      ConnState* s = t->find_or_create(k);
      ASSERT_NE(s, nullptr);
      auto [it, inserted] = live.emplace(k, s);
      if (!inserted) {
        ASSERT_EQ(it->second, s);
      }
    } else {
      t->remove(k);
      live.erase(k);
    }
    ASSERT_EQ(t->count(), live.size());
    if (step % 500 != 0 && step <= 19900) continue;
    for (const void* q : keys) {
      auto it = live.find(q);
      ASSERT_EQ(t->find(q), it == live.end() ? nullptr : it->second) << step;
    }
  }
  for (const auto& [k, s] : live) t->remove(k);
  EXPECT_EQ(t->count(), 0u);
}

TEST(ConnTable, RemovalsInEveryOrderKeepOthersFindable) {
  // One dense cluster: remove from its end, its start and its middle.
  for (int order = 0; order < 3; ++order) {
    auto t = make_table();
    constexpr std::size_t kN = 4000;   // nearly full: long chains
    for (std::size_t i = 0; i < kN; ++i) ASSERT_NE(t->find_or_create(key(i)), nullptr);
    std::vector<std::size_t> idx(kN);
    for (std::size_t i = 0; i < kN; ++i) idx[i] = order == 0 ? kN - 1 - i : order == 1 ? i : (i * 7919) % kN;
    for (std::size_t n = 0; n < kN; ++n) {
      t->remove(key(idx[n]));
      if (n % 400 != 0) continue;
      for (std::size_t m = n + 1; m < kN; ++m) ASSERT_NE(t->find(key(idx[m])), nullptr) << order << " " << n;
    }
    EXPECT_EQ(t->count(), 0u);
  }
}

TEST(ConnTable, FullTableReturnsNullAndRecoversAfterRemove) {
  auto t = make_table();
  for (std::size_t i = 0; i < ConnTable::kSlots; ++i) ASSERT_NE(t->find_or_create(key(i)), nullptr) << i;
  EXPECT_EQ(t->count(), ConnTable::kSlots);
  EXPECT_EQ(t->find_or_create(key(999999)), nullptr);
  EXPECT_EQ(t->find(key(999999)), nullptr);   // a full probe, no hang
  EXPECT_EQ(t->count(), ConnTable::kSlots);
  t->remove(key(17));
  ConnState* s = t->find_or_create(key(999999));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(t->find(key(999999)), s);
  EXPECT_EQ(t->find(key(17)), nullptr);
  for (std::size_t i = 0; i < ConnTable::kSlots; ++i) t->remove(key(i));
  t->remove(key(999999));
  EXPECT_EQ(t->count(), 0u);
  // Only tombstones left: lookups still end, and inserts reuse them.
  EXPECT_EQ(t->find(key(5)), nullptr);
  EXPECT_NE(t->find_or_create(key(5)), nullptr);
  EXPECT_EQ(t->count(), 1u);
  t->remove(key(5));
}

bool mapped(const void* p) {
  unsigned char vec;
  return mincore(const_cast<void*>(p), 1, &vec) == 0;
}

TEST(ConnTable, RemoveUnmapsEntryAndHeldRequest) {
  // A held request lives in scratch memory owned by the entry; remove wipes and unmaps
  // both (mmap memory: LSan would not notice a leak, so look at the mappings).
  auto t = make_table();
  ConnState* s = t->find_or_create(key(3));
  ASSERT_NE(s, nullptr);
  void* p = nullptr;
  ASSERT_TRUE(scratch_grow(&p, &s->held_cap, 0, 100));
  s->held = static_cast<char*>(p);
  std::memcpy(s->held, "POST / HTTP/1.1\r\n", 17);
  s->held_len = 17;
  EXPECT_TRUE(s->has_outbound_state());
  ASSERT_TRUE(mapped(s));
  ASSERT_TRUE(mapped(p));
  t->remove(key(3));
  EXPECT_FALSE(mapped(p));
  EXPECT_FALSE(mapped(s));
  EXPECT_EQ(t->find(key(3)), nullptr);
  ConnState* n = t->find_or_create(key(3));
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->held, nullptr);
  EXPECT_EQ(n->held_len, 0u);
  t->remove(key(3));
}

TEST(ConnState, Fingerprints) {
  auto t = make_table();
  ConnState* s = t->find_or_create(key(1));
  ASSERT_NE(s, nullptr);
  Fingerprint f;
  f.base = 3;
  f.hash = 100;
  f.len = 20;
  s->add_fingerprint(f);
  s->add_fingerprint(f);   // deduplicated
  EXPECT_EQ(s->nfps, 1u);
  f.len = 21;              // same hash, other length: another value
  s->add_fingerprint(f);
  EXPECT_EQ(s->nfps, 2u);
  // Fill up: the oldest is replaced.
  for (std::uint64_t h = 0; h < kMaxFingerprints; ++h) {
    Fingerprint g;
    g.base = 3;
    g.hash = 1000 + h;
    g.len = 8;
    s->add_fingerprint(g);
  }
  EXPECT_EQ(s->nfps, kMaxFingerprints);
  EXPECT_EQ(s->fps[0].hash, 1000u);
  EXPECT_EQ(s->fps[kMaxFingerprints - 1].hash, 1000u + kMaxFingerprints - 1);
  for (std::size_t i = 0; i < s->nfps; ++i) EXPECT_NE(s->fps[i].hash, 100u);
  t->remove(key(1));
}

TEST(ConnState, RequestLineTooLongForItsFieldIsUnknown) {
  auto t = make_table();
  ConnState* s = t->find_or_create(key(1));
  ASSERT_NE(s, nullptr);
  s->set_request_line("GET", 3, "/v1/models", 10);
  EXPECT_EQ(std::string(s->method, s->method_len), "GET");
  EXPECT_EQ(std::string(s->path, s->path_len), "/v1/models");
  const std::string long_method(40, 'M');
  const std::string long_path(5000, 'p');
  s->set_request_line(long_method.data(), long_method.size(), long_path.data(), long_path.size());
  EXPECT_EQ(s->method_len, sizeof s->method);
  // Not cut: "/v1/<1020 bytes>/../admin" cut at 1024 would pass a "/v1/" path rule.
  EXPECT_EQ(s->path_len, 0u);
  t->remove(key(1));
}

TEST(ConnTable, ConcurrentLookupsDuringInsertAndRemove) {
  // Readers look up stable keys while a writer churns other keys: stable keys are always
  // found, and always map to their own entry.
  auto t = make_table();
  constexpr std::size_t kStable = 64;
  std::vector<ConnState*> stable(kStable);
  for (std::size_t i = 0; i < kStable; ++i) stable[i] = t->find_or_create(key(i));
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> misses{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r)
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed))
        for (std::size_t i = 0; i < kStable; ++i)
          if (t->find(key(i)) != stable[i]) misses.fetch_add(1);
    });
  for (int round = 0; round < 20; ++round) {
    for (std::size_t i = 0; i < 200; ++i) ASSERT_NE(t->find_or_create(key(10000 + i)), nullptr);
    for (std::size_t i = 0; i < 200; ++i) t->remove(key(10000 + i));
  }
  stop = true;
  for (auto& th : readers) th.join();
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(t->count(), kStable);
  for (std::size_t i = 0; i < kStable; ++i) t->remove(key(i));
}

TEST(ConnTable, ProcessWideTableIsASingleton) {
  EXPECT_EQ(&conn_table(), &conn_table());
}

}  // namespace
}  // namespace kz::preload
