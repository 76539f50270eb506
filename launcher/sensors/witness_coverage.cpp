#include "sensors/witness_coverage.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "core/unique_fd.h"
#include "redirect/program_route.h"

namespace kz {

namespace {

// 1: has PT_INTERP (the dynamic loader runs it, LD_PRELOAD applies), 0: static,
// -1: not a 64-bit ELF file.
int dynamically_linked(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return -1;
  Elf64_Ehdr eh{};
  if (::pread(fd.get(), &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh) ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
    return -1;
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph{};
    if (::pread(fd.get(), &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)) != static_cast<ssize_t>(sizeof ph))
      return -1;
    if (ph.p_type == PT_INTERP) return 1;
  }
  return 0;
}

std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string all = path != nullptr ? path : "/usr/bin:/bin";
  for (std::size_t i = 0; i <= all.size();) {
    const std::size_t end = std::min(all.find(':', i), all.size());
    std::string candidate = all.substr(i, end - i) + "/" + name;
    char real[4096];
    if (::access(candidate.c_str(), X_OK) == 0 && ::realpath(candidate.c_str(), real) != nullptr) return real;
    i = end + 1;
  }
  return "";
}

}  // namespace

// The interpreter of a "#!" script, or "".
static std::string interpreter_of(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char buf[256] = {};
  if (!fd || ::read(fd.get(), buf, sizeof buf - 1) < 2 || buf[0] != '#' || buf[1] != '!') return "";
  std::string line(buf + 2);
  line = line.substr(0, line.find('\n'));
  const std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) return "";
  return line.substr(start, line.find_first_of(" \t", start) - start);
}

static std::string classify(const std::string& path, int depth) {
  if (std::string interp = interpreter_of(path); !interp.empty() && depth < 4)
    return "as its interpreter " + interp + ": " + classify(interp, depth + 1);
  if (executable_defines_tls_write(path)) return "uprobe (its own TLS library; installed into its processes only)";
  switch (dynamically_linked(path)) {
    case 1: return "shim (in process; uprobe when started without it)";
    case 0: return "none (static, no TLS library symbols to probe)";
    default: return "none (not an ELF program)";
  }
}

std::string witness_for_program(const std::string& path) { return classify(path, 0); }

std::vector<std::pair<std::string, std::string>> witness_coverage_examples() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* name : {"curl", "wget", "python3", "git", "node"}) {
    const std::string p = on_path(name);
    if (!p.empty()) out.emplace_back(name, witness_for_program(p));
  }
  return out;
}

}  // namespace kz
