#include "redirect/program_route.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/unique_fd.h"

namespace kz {

namespace {

// A read-only mapping of a whole file (executables are read once per run and cached).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st{};
    if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return;
    void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return;
    data_ = static_cast<const unsigned char*>(p);
    size_ = static_cast<std::size_t>(st.st_size);
  }
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<unsigned char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  bool ok() const { return data_ != nullptr; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // A pointer to `count` objects of T at `off`, or nullptr when that runs past the end.
  template <class T>
  const T* at(std::uint64_t off, std::uint64_t count = 1) const {
    if (off > size_ || count > (size_ - off) / sizeof(T)) return nullptr;
    return reinterpret_cast<const T*>(data_ + off);
  }

 private:
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Names a program defines when it carries its own TLS library: with LD_PRELOAD the shim's
// hooks would not be the functions the program's TLS code calls.
bool is_tls_write_symbol(std::string_view n) {
  return n == "SSL_write" || n == "SSL_write_ex" || n == "gnutls_record_send";
}

struct ElfFacts {
  bool interp = false;
  bool go = false;
  bool defines_tls = false;
  std::vector<std::string> needed;
};

// Defined symbols of one symbol table section.
bool scan_symbols(const MappedFile& f, const Elf64_Shdr& symtab, const Elf64_Shdr* shdrs, std::size_t nsh) {
  if (symtab.sh_link >= nsh || symtab.sh_entsize != sizeof(Elf64_Sym)) return false;
  const Elf64_Shdr& strtab = shdrs[symtab.sh_link];
  const std::size_t n = symtab.sh_size / sizeof(Elf64_Sym);
  const auto* syms = f.at<Elf64_Sym>(symtab.sh_offset, n);
  const char* strs = f.at<char>(strtab.sh_offset, strtab.sh_size);
  if (syms == nullptr || strs == nullptr) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (syms[i].st_shndx == SHN_UNDEF || syms[i].st_name >= strtab.sh_size) continue;
    const char* name = strs + syms[i].st_name;
    const std::size_t max = strtab.sh_size - syms[i].st_name;
    if (is_tls_write_symbol(std::string_view(name, strnlen(name, max)))) return true;
  }
  return false;
}

// false: not an ELF file this code understands (the caller says why).
bool read_elf(const MappedFile& f, ElfFacts& out) {
  const auto* eh = f.at<Elf64_Ehdr>(0);
  if (eh == nullptr) return false;
  const auto* ph = f.at<Elf64_Phdr>(eh->e_phoff, eh->e_phnum);
  if (ph == nullptr || eh->e_phentsize != sizeof(Elf64_Phdr)) return false;
  const Elf64_Dyn* dyn = nullptr;
  std::size_t ndyn = 0;
  for (int i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_INTERP) out.interp = true;
    if (ph[i].p_type == PT_DYNAMIC) {
      ndyn = ph[i].p_filesz / sizeof(Elf64_Dyn);
      dyn = f.at<Elf64_Dyn>(ph[i].p_offset, ndyn);
    }
  }
  const auto* sh = f.at<Elf64_Shdr>(eh->e_shoff, eh->e_shnum);
  const bool have_sections = sh != nullptr && eh->e_shnum > 0 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
                             eh->e_shstrndx < eh->e_shnum;
  const Elf64_Shdr* dynstr = nullptr;
  if (have_sections) {
    const Elf64_Shdr& names = sh[eh->e_shstrndx];
    const char* nm = f.at<char>(names.sh_offset, names.sh_size);
    for (int i = 0; i < eh->e_shnum; ++i) {
      if (nm != nullptr && sh[i].sh_name < names.sh_size) {
        const std::string_view name(nm + sh[i].sh_name, strnlen(nm + sh[i].sh_name, names.sh_size - sh[i].sh_name));
        if (name == ".go.buildinfo" || name == ".note.go.buildid") out.go = true;
        if (name == ".dynstr") dynstr = &sh[i];
      }
      if ((sh[i].sh_type == SHT_DYNSYM || sh[i].sh_type == SHT_SYMTAB) && !out.defines_tls)
        out.defines_tls = scan_symbols(f, sh[i], sh, eh->e_shnum);
    }
  }
  // A stripped Go binary may lack section names; its build info blob has a fixed magic.
  if (!out.go && f.bytes().find("\xff Go buildinf:") != std::string_view::npos) out.go = true;
  if (dyn != nullptr && dynstr != nullptr) {
    const char* strs = f.at<char>(dynstr->sh_offset, dynstr->sh_size);
    for (std::size_t i = 0; strs != nullptr && i < ndyn && dyn[i].d_tag != DT_NULL; ++i) {
      if (dyn[i].d_tag != DT_NEEDED || dyn[i].d_un.d_val >= dynstr->sh_size) continue;
      const char* s = strs + dyn[i].d_un.d_val;
      out.needed.emplace_back(s, strnlen(s, dynstr->sh_size - dyn[i].d_un.d_val));
    }
  }
  return true;
}

bool needs(const ElfFacts& e, std::string_view prefix) {
  return std::any_of(e.needed.begin(), e.needed.end(),
                     [&](const std::string& n) { return n.rfind(prefix, 0) == 0; });
}

// "OpenSSL 3.0.11 19 Sep 2023": the version banner every copy of libcrypto carries.
bool has_openssl_banner(std::string_view bytes) {
  for (std::size_t at = bytes.find("OpenSSL "); at != std::string_view::npos; at = bytes.find("OpenSSL ", at + 1)) {
    const std::string_view rest = bytes.substr(at + 8, 4);
    if (rest.size() == 4 && (rest[0] == '1' || rest[0] == '3') && rest[1] == '.' && rest[2] >= '0' &&
        rest[2] <= '9' && rest[3] == '.')
      return true;
  }
  return false;
}

ProgramClass classify(const std::string& path, int depth) {
  MappedFile f(path);
  if (!f.ok()) return {Route::Proxy, "cannot read the program file"};
  const std::string_view b = f.bytes();
  if (b.substr(0, 2) == "#!") {
    if (depth > 0) return {Route::Proxy, "script interpreter is itself a script"};
    std::string_view line = b.substr(2, b.find('\n') == std::string_view::npos ? 256 : b.find('\n') - 2);
    const std::size_t s = line.find_first_not_of(" \t");
    if (s == std::string_view::npos) return {Route::Proxy, "script without an interpreter"};
    line = line.substr(s);
    const std::string interp(line.substr(0, line.find_first_of(" \t\r")));
    ProgramClass c = classify(interp, depth + 1);
    c.reason = "script run by " + interp + ": " + c.reason;
    return c;
  }
  if (b.size() < sizeof(Elf64_Ehdr) || std::memcmp(b.data(), ELFMAG, SELFMAG) != 0)
    return {Route::Proxy, "not an ELF program"};
  const auto* eh = f.at<Elf64_Ehdr>(0);
  if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64)
    return {Route::Proxy, "not an x86-64 program (the shim cannot be loaded into it)"};
  ElfFacts e;
  if (!read_elf(f, e)) return {Route::Proxy, "malformed ELF headers"};
  if (e.go) return {Route::Proxy, "Go program (crypto/tls is compiled in)"};
  if (!e.interp) return {Route::Proxy, "statically linked (LD_PRELOAD does not apply)"};
  if (needs(e, "libjli.so") || needs(e, "libjvm.so")) return {Route::Proxy, "Java (TLS in the JVM: JSSE)"};
  if (e.defines_tls) return {Route::Proxy, "carries its own TLS library (defines SSL_write)"};
  const bool libssl = needs(e, "libssl.so");
  const bool gnutls = needs(e, "libgnutls.so");
  if (!libssl && !gnutls && has_openssl_banner(b))
    return {Route::Proxy, "carries its own OpenSSL (version banner, libssl not linked)"};
  if (libssl) return {Route::Shim, "dynamically linked against libssl"};
  if (gnutls) return {Route::Shim, "dynamically linked against GnuTLS"};
  return {Route::Shim, "dynamically linked (TLS, if any, through a shared library the shim hooks)"};
}

}  // namespace

ProgramClass classify_executable(const std::string& path) { return classify(path, 0); }

bool executable_defines_tls_write(const std::string& path) {
  MappedFile f(path);
  const std::string_view b = f.bytes();
  if (!f.ok() || b.size() < sizeof(Elf64_Ehdr) || std::memcmp(b.data(), ELFMAG, SELFMAG) != 0) return false;
  ElfFacts e;
  return read_elf(f, e) && e.defines_tls;
}

Route ProgramRouter::route(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid) + "/exe";
  struct stat st{};
  if (all_) {
    // Every program goes to the proxy; still one record per program for the audit trail.
    std::lock_guard lock(mu_);
    if (stat(proc.c_str(), &st) == 0) {
      const auto id = std::make_tuple(st.st_dev, st.st_ino, static_cast<long>(st.st_mtime));
      auto [it, fresh] = reported_.emplace(pid, id);
      if (fresh || it->second != id) {
        it->second = id;
        char buf[4096];
        const ssize_t n = readlink(proc.c_str(), buf, sizeof buf - 1);
        if (sink_) sink_(pid, n > 0 ? std::string(buf, n) : "", {Route::Proxy, "--blind=proxy: every program"});
      }
    }
    return Route::Proxy;
  }
  // The process may be gone already; then the proxy sees no more of it either way.
  if (stat(proc.c_str(), &st) != 0) return Route::Proxy;
  const auto id = std::make_tuple(st.st_dev, st.st_ino, static_cast<long>(st.st_mtime));
  char buf[4096];
  const ssize_t n = readlink(proc.c_str(), buf, sizeof buf - 1);
  const std::string exe = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  std::unique_lock lock(mu_);
  auto it = by_file_.find(id);
  if (it == by_file_.end()) {
    lock.unlock();   // reading a large executable must not stall other lookups
    // Through /proc/PID/exe: the file the process runs even if its path was replaced.
    ProgramClass c = classify_executable(proc);
    lock.lock();
    it = by_file_.emplace(id, std::move(c)).first;
  }
  const ProgramClass c = it->second;
  auto [rep, fresh] = reported_.emplace(pid, id);
  const bool report = fresh || rep->second != id;
  rep->second = id;
  lock.unlock();
  if (report && sink_) sink_(pid, exe, c);
  return c.route;
}

}  // namespace kz
