#include "secrets/approval.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <optional>

#include <nlohmann/json.hpp>

#include "kz/digest.h"
#include "kz/providers/http_client.h"

namespace kz {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// 8 characters a person reads and types without confusing them (no 0/o, 1/l/i): ~39 bits.
std::string new_code() {
  static constexpr char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  constexpr unsigned kN = sizeof kAlphabet - 1;   // 31
  std::string out;
  while (out.size() < 8) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) continue;
    for (unsigned char c : b)
      if (c < 248 && out.size() < 8) out.push_back(kAlphabet[c % kN]);   // 248 = 8 * 31: unbiased
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

// The path as a server that decodes escapes and ignores case reads it: decoded and in
// lower case. nullopt when that reading is in doubt: an escape that is malformed or
// decodes to '%' (double encoding), a ';' (path parameters, which some servers strip),
// a byte outside printable ASCII, or a "." or ".." segment (rule patterns go through it
// too, so a rule written with escapes or capitals matches the same paths).
std::optional<std::string> approval_path_form(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size() || hex_digit(path[i + 1]) < 0 || hex_digit(path[i + 2]) < 0) return std::nullopt;
      c = static_cast<char>(hex_digit(path[i + 1]) * 16 + hex_digit(path[i + 2]));
      i += 2;
      if (c == '%') return std::nullopt;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == ';' || u < 0x21 || u >= 0x7f) return std::nullopt;
    out.push_back(static_cast<char>(std::tolower(u)));
  }
  for (std::size_t start = 0; start <= out.size();) {
    const std::size_t end = std::min(out.find('/', start), out.size());
    const std::string_view seg = std::string_view(out).substr(start, end - start);
    if (seg == "." || seg == "..") return std::nullopt;
    start = end + 1;
  }
  return out;
}

}  // namespace

bool approval_required(const ApprovalRule& rule, std::string_view method, std::string_view target) {
  switch (rule.mode) {
    case ApprovalMode::None: return false;
    case ApprovalMode::First:
    case ApprovalMode::Every: return true;
    case ApprovalMode::Matching: break;
  }
  // Case-insensitive: a server that reads "post" as POST must not escape the rule.
  auto same_method = [&](const std::string& m) {
    return m.size() == method.size() && std::equal(m.begin(), m.end(), method.begin(), [](char x, char y) {
             return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
           });
  };
  if (!rule.methods.empty() && !method.empty() && std::none_of(rule.methods.begin(), rule.methods.end(), same_method))
    return false;
  if (rule.paths.empty() || target.empty()) return true;
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path_problem(path) != nullptr) return true;
  // `approve` paths list what needs a person, so a miss fails open: match what a server
  // may route on, not the bytes. Servers decode escapes ("/v1/%63harges" is
  // "/v1/charges"), strip ";" parameters ("/v1;x/charges") or ignore case; a path whose
  // reading is in doubt asks.
  const std::optional<std::string> seen = approval_path_form(path);
  if (!seen) return true;
  return std::any_of(rule.paths.begin(), rule.paths.end(), [&](const std::string& p) {
    const std::optional<std::string> pat = approval_path_form(p);
    return !pat || prefix_glob(*pat, *seen);
  });
}

std::string approval_request_hash(std::string_view secret, std::string_view method, std::string_view host,
                                  std::string_view target, std::string_view body_sha256) {
  std::string in;
  in.reserve(secret.size() + method.size() + host.size() + target.size() + body_sha256.size() + 8);
  // Each field ends with a NUL, so no two different requests give the same input.
  for (std::string_view f : {secret, method, host, target, body_sha256}) {
    in.append(f);
    in.push_back('\0');
  }
  return sha256_hex(in);
}

std::int64_t approval_ttl_seconds(const ApprovalRule& rule) {
  if (rule.ttl_seconds >= 0) return rule.ttl_seconds;
  return rule.mode == ApprovalMode::First ? 0 : 300;
}

const char* verdict_name(ApprovalVerdict v) {
  switch (v) {
    case ApprovalVerdict::Approved: return "approved";
    case ApprovalVerdict::Denied: return "denied";
    case ApprovalVerdict::Timeout: return "timeout";
  }
  return "?";
}

WebhookAnswer ask_approval_webhook(const std::string& url, const std::string& ca_file, const std::string& facts_json,
                                   const std::string& request_hash, std::chrono::steady_clock::time_point deadline,
                                   const std::atomic<bool>* cancel) {
  HttpRequest req;
  req.method = "POST";
  req.url = url;
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = facts_json;
  req.ca_file = ca_file;
  req.deadline = deadline;
  req.cancel = cancel;
  auto resp = http_send(std::move(req), "approval webhook");
  if (!resp) {
    if (resp.error().kind == ErrorKind::Timeout) return {ApprovalVerdict::Timeout, "no answer in time"};
    return {ApprovalVerdict::Denied, "webhook error: " + resp.error().message.substr(0, 160)};
  }
  const auto j = nlohmann::json::parse(resp->body.str(), nullptr, false);
  std::string decision, hash, by = "webhook";
  if (resp->status == 200 && j.is_object()) {
    if (j.contains("decision") && j["decision"].is_string()) decision = j["decision"].get<std::string>();
    if (j.contains("request_hash") && j["request_hash"].is_string()) hash = j["request_hash"].get<std::string>();
    if (j.contains("by") && j["by"].is_string()) {
      by = "webhook: ";
      for (char c : j["by"].get<std::string>().substr(0, 120)) by.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    }
  }
  // The answer must name this request: an approval of another one approves nothing.
  if (decision == "approve" && hash == request_hash) return {ApprovalVerdict::Approved, by};
  if (decision == "approve") by += " (the answer named another request)";
  else if (resp->status != 200) by += " (HTTP " + std::to_string(resp->status) + ")";
  return {ApprovalVerdict::Denied, by};
}

ApprovalGate::ApprovalGate(std::chrono::milliseconds timeout)
    : timeout_(timeout), event_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ApprovalGate::~ApprovalGate() {
  if (event_fd_ >= 0) ::close(event_fd_);
}

bool ApprovalGate::in_force(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = in_force_.find(key);
  if (it == in_force_.end()) return false;
  if (it->second > now_ms()) return true;
  in_force_.erase(it);
  return false;
}

ApprovalAsk ApprovalGate::open(ApprovalAsk facts, bool* created) {
  std::lock_guard lock(mu_);
  if (created != nullptr) *created = false;
  if (!facts.key.empty())   // no key ("every"): each request is its own ask
    for (const auto& [id, a] : open_)
      if (a.key == facts.key) return a;
  if (open_.size() >= kMaxOpenAsks) {
    facts.id = 0;
    return facts;
  }
  facts.id = next_id_++;
  facts.code = new_code();
  facts.deadline_ms = now_ms() + timeout_.count();
  if (stopped_) facts.deadline_ms = 0;   // expire() ends it at once
  open_.emplace(facts.id, facts);
  if (created != nullptr) *created = true;
  ++version_;
  cv_.notify_all();
  return facts;
}

std::vector<ApprovalAsk> ApprovalGate::open_asks() {
  std::lock_guard lock(mu_);
  std::vector<ApprovalAsk> out;
  for (const auto& [id, a] : open_) out.push_back(a);
  return out;
}

bool ApprovalGate::is_open(std::uint64_t id) {
  std::lock_guard lock(mu_);
  return open_.count(id) != 0;
}

std::uint64_t ApprovalGate::wait_change(std::uint64_t seen, std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, until, [&] { return version_ != seen || stopped_; });
  return version_;
}

void ApprovalGate::answer_locked(std::map<std::uint64_t, ApprovalAsk>::iterator it, ApprovalVerdict v,
                                 std::string by, std::string channel) {
  ApprovalAnswer a{std::move(it->second), v, std::move(by), std::move(channel)};
  open_.erase(it);
  if (v == ApprovalVerdict::Approved && !a.ask.key.empty()) {
    const std::int64_t ttl = a.ask.ttl_seconds;
    in_force_[a.ask.key] = ttl <= 0 ? INT64_MAX : now_ms() + ttl * 1000;
  }
  finished_[a.ask.id] = a;
  if (finished_.size() > kMaxFinished) finished_.erase(finished_.begin());   // ids grow: the oldest
  if (keep_answers_) answers_.push_back(std::move(a));
  ++version_;
  cv_.notify_all();
  const std::uint64_t one = 1;
  if (::write(event_fd_, &one, sizeof one) < 0) {}
}

bool ApprovalGate::answer(std::uint64_t id, ApprovalVerdict v, std::string by, std::string channel) {
  std::lock_guard lock(mu_);
  auto it = open_.find(id);
  if (it == open_.end()) return false;
  answer_locked(it, v, std::move(by), std::move(channel));
  return true;
}

std::optional<ApprovalAsk> ApprovalGate::find_code(std::string_view code) {
  std::lock_guard lock(mu_);
  for (const auto& [id, a] : open_)
    if (code.size() == a.code.size() && CRYPTO_memcmp(code.data(), a.code.data(), code.size()) == 0) return a;
  return std::nullopt;
}

void ApprovalGate::expire() {
  std::lock_guard lock(mu_);
  const std::int64_t now = now_ms();
  for (auto it = open_.begin(); it != open_.end();) {
    auto next = std::next(it);
    if (it->second.deadline_ms <= now) answer_locked(it, ApprovalVerdict::Timeout, "", stopped_ ? "stop" : "timeout");
    it = next;
  }
}

std::vector<ApprovalAnswer> ApprovalGate::take_answers() {
  std::lock_guard lock(mu_);
  std::uint64_t n;
  while (::read(event_fd_, &n, sizeof n) > 0) {}
  std::vector<ApprovalAnswer> out;
  out.swap(answers_);
  return out;
}

void ApprovalGate::keep_answers(bool keep) {
  std::lock_guard lock(mu_);
  keep_answers_ = keep;
  if (!keep) answers_.clear();
}

ApprovalAnswer ApprovalGate::await(std::uint64_t id) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (auto f = finished_.find(id); f != finished_.end()) return f->second;
    auto it = open_.find(id);
    if (it == open_.end()) {   // answered so long ago that its answer is gone: fail closed
      ApprovalAnswer gone;
      gone.ask.id = id;
      gone.channel = "timeout";
      return gone;
    }
    const std::int64_t left = it->second.deadline_ms - now_ms();
    if (left <= 0) {
      answer_locked(it, ApprovalVerdict::Timeout, "", stopped_ ? "stop" : "timeout");
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(left));
  }
}

int ApprovalGate::ms_to_next_deadline() {
  std::lock_guard lock(mu_);
  if (open_.empty()) return -1;
  std::int64_t nearest = INT64_MAX;
  for (const auto& [id, a] : open_) nearest = std::min(nearest, a.deadline_ms);
  const std::int64_t left = nearest - now_ms();
  return left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left + 1, INT_MAX));
}

void ApprovalGate::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    for (auto& [id, a] : open_) a.deadline_ms = 0;
    ++version_;
    cv_.notify_all();
  }
  expire();
}

bool ApprovalGate::stopped() {
  std::lock_guard lock(mu_);
  return stopped_;
}

}  // namespace kz
