#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

namespace kz {

namespace {

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

// The last complete line of the file (without its newline), or "" for an empty file.
Result<std::string> last_line(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return make_error(ErrorKind::Io, std::string("audit log: fstat: ") + std::strerror(errno));
  off_t end = st.st_size;
  if (end == 0) return std::string();
  std::string tail;
  off_t pos = end;
  const off_t chunk = 4096;
  while (pos > 0) {
    const off_t start = pos > chunk ? pos - chunk : 0;
    std::string buf(static_cast<std::size_t>(pos - start), '\0');
    if (pread(fd, buf.data(), buf.size(), start) != static_cast<ssize_t>(buf.size()))
      return make_error(ErrorKind::Io, "audit log: short read");
    tail.insert(0, buf);
    pos = start;
    // Skip the final newline, then look for the one before the last line.
    const std::size_t body_end = tail.size() - (tail.back() == '\n' ? 1 : 0);
    const std::size_t nl = tail.rfind('\n', body_end == 0 ? 0 : body_end - 1);
    if (nl != std::string::npos && nl < body_end) return tail.substr(nl + 1, body_end - nl - 1);
    if (pos == 0) return tail.substr(0, body_end);
  }
  return std::string();
}

}  // namespace

std::string default_audit_path() {
  const char* xdg = std::getenv("XDG_STATE_HOME");
  if (xdg != nullptr && *xdg == '/') return std::string(xdg) + "/keyzero/audit.jsonl";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/.local/state/keyzero/audit.jsonl";
}

Result<AuditLog> AuditLog::open(const std::string& path) {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(ErrorKind::Io, "audit log: cannot create " + dir.string() + ": " + ec.message());
    chmod(dir.c_str(), 0700);
  }
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error(ErrorKind::Io, "audit log: cannot open " + path + ": " + std::strerror(errno));
  return AuditLog(fd, path);
}

AuditLog::AuditLog(AuditLog&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status AuditLog::append(nlohmann::json record) {
  // The lock spans reading the last line and writing ours, so concurrent runs chain
  // their records one after the other.
  if (flock(fd_, LOCK_EX) != 0) return make_error(ErrorKind::Io, "audit log: flock failed");
  auto prev = last_line(fd_);
  Status result = ok_status();
  if (!prev) {
    result = prev.take_error();
  } else {
    nlohmann::json line = nlohmann::json::object();
    line["ts"] = now_rfc3339();
    for (auto& [k, v] : record.items()) line[k] = v;
    line["prev"] = prev->empty() ? std::string(kGenesisHash) : sha256_hex(*prev);
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (::write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      result = make_error(ErrorKind::Io, "audit log: write failed: " + std::string(std::strerror(errno)));
  }
  flock(fd_, LOCK_UN);
  return result;
}

VerifyReport verify_audit_file(const std::string& path) {
  VerifyReport r;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    r.ok = false;
    r.problem = "cannot read " + path;
    return r;
  }
  std::string line, prev_hash = kGenesisHash;
  std::size_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      r = {false, n - 1, n, "line is not a JSON object"};
      return r;
    }
    if (!j.contains("prev") || !j["prev"].is_string() || j["prev"].get<std::string>() != prev_hash) {
      r = {false, n - 1, n, n == 1 ? "first record does not start the chain" : "hash chain broken: line " +
                                                                                   std::to_string(n - 1) +
                                                                                   " was changed or removed"};
      return r;
    }
    prev_hash = sha256_hex(line);
  }
  r.records = n;
  return r;
}

Result<AuditSummary> summarize_audit_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Io, "cannot read " + path);
  AuditSummary s;
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    ++s.records;
    const std::string ev = j.value("event", "");
    ++s.by_event[ev];
    if (ev == "run.start") ++s.runs;
    const std::string decision = j.value("decision", "");
    auto text = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
    if (ev == "resolve" && decision == "ok") ++s.resolved[text("secret")];
    if (ev == "swap" && decision == "allow") {
      // A record of uses under a connection grant counts them all ("uses"); else one.
      const std::size_t n = j.contains("uses") && j["uses"].is_number_unsigned() ? j["uses"].get<std::size_t>() : 1;
      s.by_secret[text("secret")] += n;
      s.by_host[text("host")] += n;
      s.by_exe[text("exe")] += n;
    }
    if (decision == "refuse" || decision == "deny" || decision == "error") {
      std::string line = text("ts") + " " + ev;
      for (const char* k : {"secret", "host", "exe"})
        if (!text(k).empty()) line += std::string(" ") + k + "=" + text(k);
      if (j.contains("pid") && j["pid"].is_number()) line += " pid=" + std::to_string(j["pid"].get<long>());
      line += ": " + text("reason");
      s.refusals.push_back(std::move(line));
    }
  }
  return s;
}

}  // namespace kz
