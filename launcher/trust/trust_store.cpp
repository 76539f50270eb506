#include "trust/trust_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/unique_fd.h"
#include "kz/digest.h"

namespace kz {

namespace {

Status make_dirs(const std::string& dir) {
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return make_error(ErrorKind::Io, "cannot create " + part + ": " + std::strerror(errno));
  }
  return ok_status();
}

Status write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(ErrorKind::Io, std::string("write: ") + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
  return ok_status();
}

}  // namespace

Result<TrustStore> TrustStore::open_default() {
  const char* xdg = getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && xdg[0] == '/') return TrustStore(std::string(xdg) + "/keyzero/trust");
  const char* home = getenv("HOME");
  if (home != nullptr && home[0] == '/') return TrustStore(std::string(home) + "/.config/keyzero/trust");
  return make_error(ErrorKind::Config, "kz trust: neither XDG_CONFIG_HOME nor HOME is set to an absolute path, "
                                       "so there is nowhere to keep the project's trusted bindings");
}

std::string TrustStore::path_for(const std::string& config_path) const {
  return dir_ + "/" + sha256_hex(config_path) + ".json";
}

Result<std::optional<ProjectPins>> TrustStore::load(const std::string& config_path) const {
  const std::string path = path_for(config_path);
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::optional<ProjectPins>{};
    return make_error(ErrorKind::Io, "cannot read the trust record " + path);
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto j = nlohmann::json::parse(text, nullptr, false);
  auto pins = j.is_discarded() ? Result<ProjectPins>(make_error(ErrorKind::Config, "not JSON")) : pins_from_json(j);
  if (!pins)
    return make_error(ErrorKind::Config, "the trust record " + path + " is damaged (" + pins.error().message +
                                             "); remove it and run `kz trust` to pin the project again");
  if (pins->config != config_path)
    return make_error(ErrorKind::Config, "the trust record " + path + " is for " + pins->config + ", not " + config_path);
  return std::optional<ProjectPins>(std::move(*pins));
}

Status TrustStore::save(const ProjectPins& pins) const {
  if (auto st = make_dirs(dir_); !st) return st;
  const std::string path = path_for(pins.config);
  std::string tmpl = path + ".XXXXXX";
  UniqueFd fd(mkstemp(tmpl.data()));   // mode 0600
  if (!fd) return make_error(ErrorKind::Io, "cannot write in " + dir_ + ": " + std::strerror(errno));
  Status st = write_all(fd.get(), pins_to_json(pins).dump(2) + "\n");
  if (st && fsync(fd.get()) != 0) st = make_error(ErrorKind::Io, std::string("fsync: ") + std::strerror(errno));
  if (st && rename(tmpl.c_str(), path.c_str()) != 0)
    st = make_error(ErrorKind::Io, "cannot replace " + path + ": " + std::strerror(errno));
  if (!st) {
    unlink(tmpl.c_str());
    return make_error(ErrorKind::Io, "kz trust: " + st.error().message);
  }
  return ok_status();
}

}  // namespace kz
