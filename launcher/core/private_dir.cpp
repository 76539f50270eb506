#include "core/private_dir.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace kz {

Result<PrivateDir> PrivateDir::create(const std::string& prefix) {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  std::string base = (xdg != nullptr && *xdg == '/') ? xdg : "/tmp";
  std::string templ = base + "/" + prefix + "XXXXXX";
  if (mkdtemp(templ.data()) == nullptr)   // mkdtemp creates it 0700
    return make_error(ErrorKind::Io, "cannot create a private directory in " + base + ": " + std::strerror(errno));
  return PrivateDir(std::move(templ));
}

void PrivateDir::remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

}  // namespace kz
