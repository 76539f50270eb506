// The revocation list that every replica of an MCP server reads: one file, named by
// mcp.replicas.deny_list, with one id per line (a token id as the audit records name
// it, or a session id); '#' starts a comment. Reloaded when the file changes (checked on
// each use: one stat). A missing file denies nothing; an unreadable one denies
// everything (fail closed) until it can be read.
//
// The trade-off: revocation reaches a replica as fast as the file does (a shared volume,
// a ConfigMap, configuration management), and costs no coordination between replicas;
// what has not reached it is bounded by the tokens' short expiry (mcp.token_ttl).
#pragma once

#include <sys/types.h>

#include <ctime>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace kz::mcp {

class DenyList {
 public:
  explicit DenyList(std::string path) : path_(std::move(path)) {}

  // Whether `id` is revoked (or the list cannot be read). "" is never revoked.
  bool denies(std::string_view id);
  const std::string& path() const { return path_; }

 private:
  void reload_if_changed();

  std::string path_;
  std::mutex mu_;
  bool loaded_ = false, unreadable_ = false;
  ino_t ino_ = 0;
  off_t size_ = -1;
  timespec mtime_{};
  std::set<std::string, std::less<>> ids_;
};

}  // namespace kz::mcp
