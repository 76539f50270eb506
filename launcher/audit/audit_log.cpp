#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/json_dump.h"
#include "core/utc_time.h"

namespace kz {

namespace {

std::string now_rfc3339() { return utc_iso(std::chrono::system_clock::now(), true); }

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

struct Head {
  std::size_t records = 0;
  std::string last;
};

// The head in an open file; an error when it does not parse.
Result<Head> parse_head(int fd, const std::string& head_path) {
  std::string text;
  char buf[1024];
  ssize_t n;
  off_t off = 0;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0 && text.size() < 65536) {
    text.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("records") || !j["records"].is_number_unsigned() ||
      !j.contains("last") || !j["last"].is_string())
    return make_error(ErrorKind::Io, head_path + " is not a head file ({\"records\": N, \"last\": hash})");
  return Head{j["records"].get<std::size_t>(), j["last"].get<std::string>()};
}

// The head file, or nullopt when there is none; an error when it exists but is unreadable.
Result<std::optional<Head>> read_head(const std::string& head_path) {
  int fd = ::open(head_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Head>();
    return make_error(ErrorKind::Io, "cannot read " + head_path + ": " + std::strerror(errno));
  }
  // Empty: created by an append that did not get to write it (crash, full disk).
  struct stat st {};
  if (fstat(fd, &st) == 0 && st.st_size == 0) {
    ::close(fd);
    return std::optional<Head>();
  }
  auto h = parse_head(fd, head_path);
  ::close(fd);
  if (!h) return h.take_error();
  return std::optional<Head>(std::move(*h));
}

// Complete lines in the file (used once for a log that has no valid head yet).
Result<std::size_t> count_lines(int fd) {
  std::size_t n = 0;
  char buf[65536];
  off_t off = 0;
  for (;;) {
    const ssize_t r = pread(fd, buf, sizeof buf, off);
    if (r < 0) return make_error(ErrorKind::Io, std::string("audit log: read: ") + std::strerror(errno));
    if (r == 0) return n;
    for (ssize_t i = 0; i < r; ++i) n += buf[i] == '\n';
    off += r;
  }
}

// Replaced in place: one pwrite of a fixed-size block at offset 0, made while the log's
// exclusive flock is held. Readers (verify) take the shared flock, so they see the old
// head or the new one, never a mix. write-to-temp + rename was measured first and cost
// ~30x the append itself on ext4 (a rename over an existing file makes ext4 push the new
// file's data to disk, auto_da_alloc); the block is far below one disk sector, so a
// crash leaves the old or the new head. A head that does not parse is rebuilt by
// counting on the next append. No fsync (the log has none either; it would cost far more
// than the append): after a power loss the head may be behind the log (verify notes it)
// or ahead (verify reports the records the crash lost as truncated).
Status write_head(int fd, const std::string& log_path, std::size_t records, const std::string& last_hash) {
  const std::string head = audit_head_path(log_path);
  std::string text = nlohmann::json{{"records", records}, {"last", last_hash}, {"path", log_path}}.dump();
  // Padded with spaces (valid JSON whitespace) so a shorter head fully covers a longer one.
  constexpr std::size_t kBlock = 400;
  text.resize(std::max(text.size() + 1, kBlock), ' ');
  text.back() = '\n';
  struct stat st {};
  bool ok = fstat(fd, &st) == 0;
  if (ok && static_cast<std::size_t>(st.st_size) > text.size()) {
    // A longer old head (a longer path before): pad over all of it.
    text.back() = ' ';
    text.resize(static_cast<std::size_t>(st.st_size), ' ');
    text.back() = '\n';
  }
  ok = ok && ::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
  const int err = errno;
  if (!ok) return make_error(ErrorKind::Io, "audit log: cannot update " + head + ": " + std::strerror(err));
  return ok_status();
}

}  // namespace

std::string audit_head_path(const std::string& log_path) { return log_path + ".head"; }

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
  // Absolute, so the head names the log unambiguously wherever verify runs from.
  auto abs = std::filesystem::absolute(path, ec);
  return AuditLog(fd, ec ? path : abs.lexically_normal().string());
}

AuditLog::AuditLog(AuditLog&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status AuditLog::append(nlohmann::json record, std::string* written) {
  std::vector<nlohmann::json> one;
  one.push_back(std::move(record));
  std::vector<std::string> lines;
  Status st = append_batch(std::move(one), written != nullptr ? &lines : nullptr);
  if (written != nullptr && !lines.empty()) *written = std::move(lines.front());
  return st;
}

void SerializedRecord::sort() {
  std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

namespace {

// The line of a serialised record with ts and prev in their sorted places.
std::string splice_line(const SerializedRecord& r, const std::string& ts, const std::string& prev) {
  std::string text;
  std::size_t size = 40 + ts.size() + prev.size();
  for (const auto& [k, v] : r.fields) size += k.size() + v.size() + 4;
  text.reserve(size);
  text += '{';
  bool first = true;
  auto field = [&](std::string_view k, std::string_view raw, bool quote) {
    if (!first) text += ',';
    first = false;
    dump_json_string(k, text);
    text += ':';
    if (quote) dump_json_string(raw, text);
    else text += raw;
  };
  bool prev_done = false, ts_done = false;
  for (const auto& [k, v] : r.fields) {
    if (k == "prev" || k == "ts") continue;   // the log's own (a json record's would be replaced)
    if (!prev_done && std::string_view("prev") < k) { field("prev", prev, true); prev_done = true; }
    if (!ts_done && std::string_view("ts") < k) { field("ts", ts, true); ts_done = true; }
    field(k, v, false);
  }
  if (!prev_done) field("prev", prev, true);
  if (!ts_done) field("ts", ts, true);
  text += '}';
  return text;
}

}  // namespace

Status AuditLog::append_batch(std::vector<nlohmann::json> records, std::vector<std::string>* written) {
  std::vector<PendingRecord> pending;
  pending.reserve(records.size());
  for (auto& r : records) pending.emplace_back(std::move(r));
  return append_batch(std::move(pending), written);
}

Status AuditLog::append_batch(std::vector<PendingRecord> records, std::vector<std::string>* written) {
  if (records.empty()) return ok_status();
  // The lock spans reading the last line, writing ours and replacing the head, so
  // concurrent runs chain their records one after the other and the head always
  // describes a complete prefix of the log.
  if (flock(fd_, LOCK_EX) != 0) return make_error(ErrorKind::Io, "audit log: flock failed");
  auto prev = last_line(fd_);
  Status result = ok_status();
  if (!prev) {
    result = prev.take_error();
  } else {
    std::string prev_hash = prev->empty() ? std::string(kGenesisHash) : sha256_hex(*prev);
    // Records before ours: the head's count when the head describes the line we chain
    // to (the usual case, O(1)); otherwise (no head yet, or a writer that does not keep
    // heads appended since) the lines are counted once.
    const std::string head_path = audit_head_path(path_);
    const int head_fd = ::open(head_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (head_fd < 0)
      result = make_error(ErrorKind::Io, "audit log: cannot open " + head_path + ": " + std::strerror(errno));
    std::size_t before = 0;
    if (result && !prev->empty()) {
      auto head = parse_head(head_fd, head_path);
      if (head && head->last == prev_hash) {
        before = head->records;
      } else {
        auto n = count_lines(fd_);
        if (!n) result = n.take_error();
        else before = *n;
      }
    }
    // Each line chains to the one before it, ours included; one write for all of them.
    std::string block;
    const std::string ts = now_rfc3339();
    for (auto& pending : records) {
      std::string text;
      if (auto* serialized = std::get_if<SerializedRecord>(&pending)) {
        text = splice_line(*serialized, ts, prev_hash);
      } else {
        // Objects keep their keys sorted, so adding ts and prev in place gives the same
        // line as building a new object, without copying the record.
        auto& record = std::get<nlohmann::json>(pending);
        if (!record.is_object()) record = nlohmann::json::object();
        record["ts"] = ts;
        record["prev"] = prev_hash;
        text = dump_json(record);   // nlohmann's compact dump, byte for byte
      }
      prev_hash = sha256_hex(text);
      block += text;
      block += '\n';
      if (written != nullptr) written->push_back(std::move(text));
    }
    if (result && ::write(fd_, block.data(), block.size()) != static_cast<ssize_t>(block.size()))
      result = make_error(ErrorKind::Io, "audit log: write failed: " + std::string(std::strerror(errno)));
    if (result) result = write_head(head_fd, path_, before + records.size(), prev_hash);
    if (head_fd >= 0) ::close(head_fd);
  }
  flock(fd_, LOCK_UN);
  return result;
}

VerifyReport verify_audit_file(const std::string& path) {
  VerifyReport r;
  std::ifstream f(path, std::ios::binary);
  // A shared lock keeps appenders (exclusive) out while the head and the log are read,
  // so a run writing right now is not mistaken for truncation.
  const int lock_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (!f || lock_fd < 0) {
    if (lock_fd >= 0) ::close(lock_fd);
    r.ok = false;
    r.problem = "cannot read " + path;
    return r;
  }
  flock(lock_fd, LOCK_SH);
  struct Unlock {
    int fd;
    ~Unlock() { flock(fd, LOCK_UN); ::close(fd); }
  } unlock{lock_fd};
  auto head = read_head(audit_head_path(path));
  if (!head) {
    r.ok = false;
    r.problem = head.error().message;
    return r;
  }
  std::string line, prev_hash = kGenesisHash;
  std::string hash_at_head;   // hash of line number head->records, when the log has it
  std::size_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      r.ok = false;
      r.records = n - 1;
      r.bad_line = n;
      r.problem = "line is not a JSON object";
      return r;
    }
    if (!j.contains("prev") || !j["prev"].is_string() || j["prev"].get<std::string>() != prev_hash) {
      r.ok = false;
      r.records = n - 1;
      r.bad_line = n;
      r.problem = n == 1 ? "first record does not start the chain"
                         : "hash chain broken: line " + std::to_string(n - 1) + " was changed or removed";
      return r;
    }
    prev_hash = sha256_hex(line);
    if (*head && n == (*head)->records) hash_at_head = prev_hash;
  }
  r.records = n;
  if (!*head) {
    r.note = "no head file (" + audit_head_path(path) +
             "): written by a kz from before heads, or removed; truncation at the end cannot be checked";
    return r;
  }
  const Head& h = **head;
  const std::string last = n == 0 ? std::string(kGenesisHash) : prev_hash;
  if (n < h.records || (n == h.records && last != h.last) || (n > h.records && hash_at_head != h.last)) {
    r.ok = false;
    r.truncated = true;
    r.problem = "truncated: the head records " + std::to_string(h.records) + " records ending in " + h.last +
                ", the log has " + std::to_string(n) +
                (n >= h.records ? " and its record " + std::to_string(h.records) + " is a different one" : "");
    return r;
  }
  r.head_checked = true;
  if (n > h.records)
    r.note = std::to_string(n - h.records) +
             " record(s) after the one the head names: appended by a kz that does not keep heads, or "
             "interrupted between writing the record and the head";
  return r;
}

Result<AuditSummary> summarize_audit_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Io, "cannot read " + path);
  AuditSummary s;
  std::map<std::string, std::string> config_hash;   // config path -> sha256 at its last run
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
    if (ev == "run.start" && !text("config_sha256").empty()) {
      auto [it, first] = config_hash.try_emplace(text("config"), text("config_sha256"));
      if (!first && it->second != text("config_sha256")) {
        s.config_changes.push_back(text("ts") + " " + text("config") + " changed since its previous run (sha256 " +
                                   it->second.substr(0, 12) + "… → " + text("config_sha256").substr(0, 12) + "…)");
        it->second = text("config_sha256");
      }
    }
    if (ev == "swap" && decision == "allow") {
      // A record of uses under a connection grant counts them all ("uses"); else one.
      const std::size_t n = j.contains("uses") && j["uses"].is_number_unsigned() ? j["uses"].get<std::size_t>() : 1;
      s.by_secret[text("secret")] += n;
      s.by_host[text("host")] += n;
      s.by_exe[text("exe")] += n;
    }
    if (ev == "sign" && decision == "allow") {
      // A request kz signed with a key it holds (AWS SigV4): a use of that key.
      ++s.by_secret[text("secret")];
      ++s.by_host[text("host")];
      ++s.by_exe[text("exe")];
      ++s.signed_by_secret[text("secret")];
    }
    if (ev == "mcp.call" && decision == "allow" && text("tool") == "fetch" && j.contains("secrets") &&
        j["secrets"].is_array()) {
      // A fetch made by kz for an MCP agent: one use of each secret it swapped in.
      for (const auto& name : j["secrets"]) {
        if (!name.is_string()) continue;
        ++s.by_secret[name.get<std::string>()];
        ++s.by_host[text("host")];
        ++s.by_exe["kz (MCP fetch for " + text("sub") + ")"];
      }
    }
    if (ev == "mcp.call" && decision == "allow" && text("tool") == "resolve") ++s.resolved[text("secret")];
    if (ev == "leak") ++s.leaks;
    if (ev == "exfil") ++s.exfil;
    if (ev == "rotate" && decision == "ok" && !(j.contains("changed") && j["changed"] == false)) ++s.rotated[text("secret")];
    if (ev == "rotate" && decision != "ok") ++s.rotate_failed[text("secret")];
    if (ev == "run.restart") ++s.restarts;
    if (decision == "refuse" || decision == "deny" || decision == "error" || decision == "expired" || ev == "leak" ||
        ev == "exfil") {
      std::string line = text("ts") + " " + ev;
      for (const char* k : {"secret", "host", "exe", "sub", "tool", "config"})
        if (!text(k).empty()) line += std::string(" ") + k + "=" + text(k);
      if (j.contains("pid") && j["pid"].is_number()) line += " pid=" + std::to_string(j["pid"].get<long>());
      line += ": " + text("reason");
      s.refusals.push_back(std::move(line));
    }
  }
  return s;
}

}  // namespace kz
