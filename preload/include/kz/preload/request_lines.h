// The last request line (method and target) written on each TLS connection that has no
// ConnState yet. The broker checks a secret's `methods` and `paths` against it, and a
// token often comes in a write after the head (a JSON body written separately): by then
// the head has gone out through the fast path, which keeps no per-connection state.
//
// A fixed table of slots indexed by a hash of the connection key, written without lock
// or allocation (a per-slot sequence counter; the bytes live in relaxed atomic words),
// so noting a request line costs the fast path well under a microsecond. Two
// connections that hash to the same slot overwrite each other: the loser's line is then
// unknown and a secret restricted by methods/paths is refused for it (fail closed),
// never checked against another connection's line.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kz::preload {

class RequestLines {
 public:
  static constexpr std::size_t kSlots = 256;
  static constexpr std::size_t kMaxMethod = 16, kMaxTarget = 1024;

  // Notes the request line that [p, p+n) starts with ("METHOD SP target SP"). Lines
  // that do not parse or whose parts are too long are not kept (an older line of the
  // same connection is dropped).
  void note(const void* key, const char* p, std::size_t n);
  // Copies the line noted for key (method: kMaxMethod bytes, target: kMaxTarget bytes);
  // false when there is none or it is being overwritten.
  bool get(const void* key, char* method, std::size_t* method_len, char* target, std::size_t* target_len) const;
  void forget(const void* key);

 private:
  static constexpr std::size_t kWords = (kMaxMethod + kMaxTarget) / 8;
  struct Slot {
    std::atomic<std::uint32_t> seq{0};      // odd while a writer is inside
    std::atomic<std::uintptr_t> key{0};
    std::atomic<std::uint32_t> lens{0};     // method length << 16 | target length
    std::atomic<std::uint64_t> data[kWords] = {};
  };
  static std::size_t slot_of(const void* key);
  Slot slots_[kSlots];
};

// The process-wide table used by the hooks.
RequestLines& request_lines();

}  // namespace kz::preload
