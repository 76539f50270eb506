#include "mcp/deny_list.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>

#include "core/log.h"

namespace kz::mcp {

void DenyList::reload_if_changed() {
  struct stat st{};
  if (::stat(path_.c_str(), &st) != 0) {
    // Gone after the start (a volume unmounted, the file deleted): fail closed, as for
    // an unreadable file, rather than honour every revoked token again.
    if (!unreadable_) spdlog::error("deny list {}: cannot be read; every token and session is refused", path_);
    unreadable_ = true;
    ids_.clear();
    loaded_ = false;
    return;
  }
  if (loaded_ && st.st_ino == ino_ && st.st_size == size_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec)
    return;
  std::ifstream f(path_);
  if (!f) {
    if (!unreadable_) spdlog::error("deny list {}: cannot be read; every token and session is refused", path_);
    unreadable_ = true;
    return;
  }
  std::set<std::string, std::less<>> ids;
  for (std::string line; std::getline(f, line);) {
    line = line.substr(0, line.find('#'));
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r");
    ids.insert(line.substr(b, e - b + 1));
  }
  ids_ = std::move(ids);
  unreadable_ = false;
  loaded_ = true;
  ino_ = st.st_ino;
  size_ = st.st_size;
  mtime_ = st.st_mtim;
  spdlog::info("deny list {}: {} id(s)", path_, ids_.size());
}

bool DenyList::denies(std::string_view id) {
  std::lock_guard lock(mu_);
  reload_if_changed();
  if (unreadable_) return true;
  return !id.empty() && ids_.find(id) != ids_.end();
}

}  // namespace kz::mcp
