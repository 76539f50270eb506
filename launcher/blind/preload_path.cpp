#include "blind/preload_path.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace kz {

namespace fs = std::filesystem;

std::vector<std::string> preload_candidates() {
  std::vector<std::string> out;
  if (const char* e = std::getenv("KZ_PRELOAD_LIB"); e != nullptr && *e != '\0') out.emplace_back(e);
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((self.parent_path().parent_path() / "lib" / kPreloadName).lexically_normal().string());
#ifdef KZ_INSTALL_FULL_LIBDIR
  out.push_back(std::string(KZ_INSTALL_FULL_LIBDIR) + "/" + kPreloadName);
#endif
  return out;
}

Result<std::string> find_preload_library() {
  std::string looked;
  for (const auto& c : preload_candidates()) {
    // The dynamic loader needs an absolute path; a relative $KZ_PRELOAD_LIB is resolved here.
    std::error_code ec;
    const std::string abs = fs::absolute(c, ec).string();
    if (!ec && access(abs.c_str(), R_OK) == 0) return abs;
    looked += "\n  " + c;
  }
  return make_error(ErrorKind::NotFound, std::string("blind mode needs ") + kPreloadName + "; looked in:" + looked +
                                             "\n(build it with scripts/build, or set KZ_PRELOAD_LIB)");
}

}  // namespace kz
