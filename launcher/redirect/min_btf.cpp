#include "redirect/min_btf.h"

#if KZ_HAVE_BPF
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "kz_min_btf.h"   // generated (bpf/CMakeLists.txt): kz_min_btf, kz_min_btf_kernel_notes
#endif

namespace kz {

MinBtf MinBtf::open() {
  MinBtf b;
#if KZ_HAVE_BPF
  char notes[sizeof kz_min_btf_kernel_notes + 1];
  UniqueFd n(::open("/sys/kernel/notes", O_RDONLY | O_CLOEXEC));
  if (!n) return b;
  const ssize_t got = ::read(n.get(), notes, sizeof notes);
  if (got != static_cast<ssize_t>(sizeof kz_min_btf_kernel_notes) ||
      std::memcmp(notes, kz_min_btf_kernel_notes, sizeof kz_min_btf_kernel_notes) != 0)
    return b;
  UniqueFd fd(static_cast<int>(::memfd_create("kz-min-btf", MFD_CLOEXEC)));
  if (!fd) return b;
  const auto* p = kz_min_btf;
  std::size_t left = sizeof kz_min_btf;
  while (left > 0) {
    const ssize_t w = ::write(fd.get(), p, left);
    if (w <= 0) return b;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  b.path_ = "/proc/self/fd/" + std::to_string(fd.get());
  b.fd_ = std::move(fd);
#endif
  return b;
}

}  // namespace kz
