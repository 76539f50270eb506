// A directory only this user can enter (0700), made under $XDG_RUNTIME_DIR (else /tmp)
// and removed with everything in it when the owner goes away.
#pragma once

#include <string>

#include "kz/result.h"

namespace kz {

class PrivateDir {
 public:
  // `prefix`: the start of the directory's name ("kz-proxy-" → kz-proxy-Ab12Cd).
  static Result<PrivateDir> create(const std::string& prefix);
  PrivateDir(PrivateDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  PrivateDir& operator=(PrivateDir&&) = delete;
  PrivateDir(const PrivateDir&) = delete;
  ~PrivateDir() { remove(); }
  const std::string& path() const { return path_; }
  void remove();

 private:
  explicit PrivateDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

}  // namespace kz
