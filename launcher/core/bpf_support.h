// What every eBPF loader of kz shares: the capability and environment checks, and the
// capture of libbpf's own explanation of a failed load for the error message.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "kz/result.h"

namespace kz {

inline constexpr const char* kKernelBtfPath = "/sys/kernel/btf/vmlinux";

// Capability bits (linux/capability.h), for the checks below.
inline constexpr int kCapNetAdmin = 12, kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;

// Effective capabilities of this process, from /proc/self/status (no libcap needed).
std::uint64_t effective_caps();
inline bool has_cap(std::uint64_t caps, int bit) { return ((caps >> bit) & 1u) != 0; }
// The BPF programs name processes as the initial PID namespace numbers them.
bool in_initial_pid_namespace();

std::string libbpf_error(int err);

// While alive, libbpf's messages (the verifier log of a failed load) are kept, not
// printed: kz's stderr belongs to the agent's masked output. One capture at a time.
class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
  // "; libbpf said: ..." (its last 2 KiB), or "" when it said nothing.
  std::string tail() const;

 private:
  std::unique_lock<std::mutex> lock_;
  libbpf_print_fn_t old_ = nullptr;
};

// unique_ptr deleter for a libbpf skeleton (kz_NAME__destroy) or other object freed by a
// void function.
template <class T, void (*Destroy)(T*)>
struct BpfDestroy {
  void operator()(T* p) const { Destroy(p); }
};

struct RingBufferFree {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};
using RingBufferPtr = std::unique_ptr<ring_buffer, RingBufferFree>;

// "WHAT: <libbpf's error text>; libbpf said: ..."
Error bpf_load_error(const std::string& what, int err, const LibbpfLogCapture* log);

}  // namespace kz
