#include "secrets/approval.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

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

}  // namespace

bool approval_required(const ApprovalRule& rule, std::string_view method, std::string_view target) {
  switch (rule.mode) {
    case ApprovalMode::None: return false;
    case ApprovalMode::First:
    case ApprovalMode::Every: return true;
    case ApprovalMode::Matching: break;
  }
  if (!rule.methods.empty() && !method.empty() &&
      std::find(rule.methods.begin(), rule.methods.end(), method) == rule.methods.end())
    return false;
  if (rule.paths.empty() || target.empty()) return true;
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path_problem(path) != nullptr) return true;
  Binding only_paths;
  only_paths.paths = rule.paths;
  return path_allowed(only_paths, target);
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

ApprovalAsk ApprovalGate::open(ApprovalAsk facts) {
  std::lock_guard lock(mu_);
  if (!facts.key.empty())   // no key ("every"): each request is its own ask
    for (const auto& [id, a] : open_)
      if (a.key == facts.key) return a;
  facts.id = next_id_++;
  facts.code = new_code();
  facts.deadline_ms = now_ms() + timeout_.count();
  if (stopped_) facts.deadline_ms = 0;   // expire() ends it at once
  open_.emplace(facts.id, facts);
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
  answers_.push_back(std::move(a));
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
