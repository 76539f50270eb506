// What the TLS tap learnt about programs with their own TLS library, kept between runs:
// per file (device, inode, size, mtime and ctime, so a rewritten or replaced file is a
// new entry), whether it defines the TLS write functions and their uprobe offsets. node
// is a ~100 MB ELF whose symbol tables take a while to read; with this, a process that
// runs it is probed in the time a link takes, and kz knows before the first exec which
// programs to hold at exec until their probes are in (bpf/proctree.bpf.h).
//
// The file is kz's (root's): /var/cache/kz/tls-programs, or $KZ_CACHE_DIR/tls-programs.
// It is trusted only when its owner is kz's user and no one else may write it or its
// directory (a program that could edit it could hide its own TLS library from the tap);
// otherwise kz works without it. A line it cannot read is ignored.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace kz {

struct ProgramFile {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  auto key() const { return std::make_tuple(dev, ino, size, mtime_ns, ctime_ns); }
  bool operator<(const ProgramFile& o) const { return key() < o.key(); }
};

// The identity of the file at `path` (following links); nullopt when it cannot be read.
std::optional<ProgramFile> program_file(const std::string& path);

struct ProgramProbes {
  std::vector<std::uint64_t> offsets, cookies;
  int writes = 0;   // 0: no TLS library of its own
};

class ProgramTlsCache {
 public:
  // The default file (see above); an unusable one leaves the cache empty and unsaved.
  static ProgramTlsCache open_default();
  // `path` ("" keeps it in memory only).
  explicit ProgramTlsCache(std::string path);

  std::optional<ProgramProbes> find(const ProgramFile& f) const;
  // Remembered, and appended to the file.
  void put(const ProgramFile& f, const ProgramProbes& p);
  // The files known to carry their own TLS library.
  std::vector<ProgramFile> own_tls() const;
  const std::string& path() const { return path_; }

 private:
  void load();
  std::string path_;
  mutable std::mutex mu_;
  std::map<ProgramFile, ProgramProbes> entries_;
};

}  // namespace kz
