#include "sensors/elf_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "core/unique_fd.h"

namespace kz {

namespace {

// A read-only mapping of the whole file, unmapped on scope exit.
struct Mapping {
  const unsigned char* p = nullptr;
  std::size_t n = 0;
  explicit Mapping(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st{};
    if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) return;
    void* m = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (m == MAP_FAILED) return;
    p = static_cast<const unsigned char*>(m);
    n = static_cast<std::size_t>(st.st_size);
  }
  ~Mapping() {
    if (p != nullptr) munmap(const_cast<unsigned char*>(p), n);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  template <class T>
  const T* at(std::uint64_t off, std::uint64_t count = 1) const {
    if (p == nullptr || off > n || count > (n - off) / sizeof(T)) return nullptr;
    return reinterpret_cast<const T*>(p + off);
  }
};

}  // namespace

std::map<std::string, std::uint64_t> elf_function_offsets(const std::string& path,
                                                          const std::vector<std::string>& names) {
  std::map<std::string, std::uint64_t> out;
  Mapping f(path);
  const auto* eh = f.at<Elf64_Ehdr>(0);
  if (eh == nullptr || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
    return out;
  const auto* ph = f.at<Elf64_Phdr>(eh->e_phoff, eh->e_phnum);
  const auto* sh = f.at<Elf64_Shdr>(eh->e_shoff, eh->e_shnum);
  if (ph == nullptr || sh == nullptr || eh->e_shentsize != sizeof(Elf64_Shdr)) return out;
  auto to_offset = [&](std::uint64_t addr, std::uint64_t* off) {
    for (int i = 0; i < eh->e_phnum; ++i) {
      if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_X) == 0) continue;
      if (addr >= ph[i].p_vaddr && addr < ph[i].p_vaddr + ph[i].p_memsz) {
        *off = addr - ph[i].p_vaddr + ph[i].p_offset;
        return true;
      }
    }
    return false;
  };
  for (int s = 0; s < eh->e_shnum; ++s) {
    if ((sh[s].sh_type != SHT_DYNSYM && sh[s].sh_type != SHT_SYMTAB) || sh[s].sh_entsize != sizeof(Elf64_Sym) ||
        sh[s].sh_link >= eh->e_shnum)
      continue;
    const Elf64_Shdr& strtab = sh[sh[s].sh_link];
    const std::size_t count = sh[s].sh_size / sizeof(Elf64_Sym);
    const auto* syms = f.at<Elf64_Sym>(sh[s].sh_offset, count);
    const char* strs = f.at<char>(strtab.sh_offset, strtab.sh_size);
    if (syms == nullptr || strs == nullptr) continue;
    for (std::size_t i = 0; i < count; ++i) {
      const Elf64_Sym& y = syms[i];
      if (ELF64_ST_TYPE(y.st_info) != STT_FUNC || y.st_shndx == SHN_UNDEF || y.st_value == 0 ||
          y.st_name >= strtab.sh_size)
        continue;
      const std::string_view name(strs + y.st_name, strnlen(strs + y.st_name, strtab.sh_size - y.st_name));
      if (std::find(names.begin(), names.end(), name) == names.end() || out.count(std::string(name)) != 0) continue;
      std::uint64_t off = 0;
      if (to_offset(y.st_value, &off)) out.emplace(std::string(name), off);
    }
  }
  return out;
}

}  // namespace kz
