// The kernel types kz's BPF objects relocate against (CO-RE), cut at build time from
// this machine's kernel BTF (`bpftool gen min_core_btf`, bpf/CMakeLists.txt): with it
// libbpf need not read and parse the kernel's several MiB of BTF at every `kz run`.
// Shared by the redirect and the sensors' objects.
#pragma once

#include <string>

#include "core/unique_fd.h"

namespace kz {

class MinBtf {
 public:
  // The embedded BTF as a file libbpf can open (a memfd), when the running kernel is
  // the one it was cut from (same build id); otherwise empty, and libbpf reads the
  // kernel's own BTF.
  static MinBtf open();
  // For bpf_object_open_opts.btf_custom_path: null when empty. Valid while this lives.
  const char* path() const { return path_.empty() ? nullptr : path_.c_str(); }

 private:
  UniqueFd fd_;
  std::string path_;
};

}  // namespace kz
