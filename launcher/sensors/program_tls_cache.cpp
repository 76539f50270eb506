#include "sensors/program_tls_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/unique_fd.h"

namespace kz {

namespace {

constexpr const char* kVersion = "kz-tls-programs-1";

// Owned by us and writable by no one else: a cache others may edit is not used.
bool private_to_us(const struct stat& st) {
  return st.st_uid == ::geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

}  // namespace

std::optional<ProgramFile> program_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  ProgramFile f;
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return f;
}

ProgramTlsCache ProgramTlsCache::open_default() {
  const char* env = std::getenv("KZ_CACHE_DIR");
  const std::string dir = env != nullptr && env[0] == '/' ? env : "/var/cache/kz";
  ::mkdir(dir.c_str(), 0700);   // exists already, or made now; checked below either way
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !private_to_us(st)) return ProgramTlsCache("");
  return ProgramTlsCache(dir + "/tls-programs");
}

ProgramTlsCache::ProgramTlsCache(std::string path) : path_(std::move(path)) { load(); }

void ProgramTlsCache::load() {
  if (path_.empty()) return;
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !private_to_us(st)) {
    if (fd) path_.clear();   // someone else's file: neither read nor written
    return;
  }
  std::ifstream in("/proc/self/fd/" + std::to_string(fd.get()));
  std::string line;
  if (!std::getline(in, line) || line != kVersion) return;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ProgramFile f;
    ProgramProbes p;
    std::size_t n = 0;
    if (!(ls >> f.dev >> f.ino >> f.size >> f.mtime_ns >> f.ctime_ns >> p.writes >> n) || n > 64) continue;
    p.offsets.resize(n);
    p.cookies.resize(n);
    bool ok = true;
    for (std::size_t i = 0; i < n && ok; ++i) ok = static_cast<bool>(ls >> p.offsets[i] >> p.cookies[i]);
    if (ok) entries_[f] = std::move(p);
  }
}

std::optional<ProgramProbes> ProgramTlsCache::find(const ProgramFile& f) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(f);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void ProgramTlsCache::put(const ProgramFile& f, const ProgramProbes& p) {
  std::lock_guard lock(mu_);
  if (!entries_.emplace(f, p).second || path_.empty()) return;
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !private_to_us(st)) return;
  std::ostringstream out;
  if (st.st_size == 0) out << kVersion << "\n";
  out << f.dev << ' ' << f.ino << ' ' << f.size << ' ' << f.mtime_ns << ' ' << f.ctime_ns << ' ' << p.writes << ' '
      << p.offsets.size();
  for (std::size_t i = 0; i < p.offsets.size(); ++i) out << ' ' << p.offsets[i] << ' ' << p.cookies[i];
  out << '\n';
  const std::string text = out.str();
  // One write of one line (O_APPEND): two runs appending at once do not interleave lines.
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    // A short write leaves a line load() skips.
  }
}

std::vector<ProgramFile> ProgramTlsCache::own_tls() const {
  std::lock_guard lock(mu_);
  std::vector<ProgramFile> out;
  for (const auto& [f, p] : entries_)
    if (p.writes > 0) out.push_back(f);
  return out;
}

}  // namespace kz
