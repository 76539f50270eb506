// Approval (step-up, issue 19 part 5): a secret with `approve = ...` holds the uses its
// rule names until a person approves them. The domain half: which uses need an
// approval, the hash a request is approved by, and the gate that keeps the open asks,
// the approvals in force and the answers. The channels a person answers on (the
// terminal, `kz approve`, a webhook) live in blind/approval_channels.h; the broker
// holds a swap's reply until the gate answers (blind/broker.cpp).
//
// Threads: the broker opens asks and takes answers; each channel reads the open asks
// and answers them. Every member is safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/binding.h"

namespace kz {

// Does this use need an approval under `rule`? An unknown method or path (no request
// line seen) and a path that is not canonical count as matching (fail closed).
bool approval_required(const ApprovalRule& rule, std::string_view method, std::string_view target);

// What an approval is bound to: SHA-256 (hex) of the secret, method, host and request
// target (path and query, as sent), and the body's SHA-256 when the caller has it.
std::string approval_request_hash(std::string_view secret, std::string_view method, std::string_view host,
                                  std::string_view target, std::string_view body_sha256 = {});

// How long an approval of `rule` lasts, in seconds; 0: the rest of the run.
std::int64_t approval_ttl_seconds(const ApprovalRule& rule);

struct ApprovalAsk {
  std::uint64_t id = 0;
  std::string secret, token_id, host, method, path;   // path: without the query
  std::string target;         // the request target as sent (path and query): the prompt shows it
  std::string request_hash;                            // approval_request_hash
  std::string key;            // what an approval covers: the hash, or the secret (First);
                              // empty ("every"): this one request, never again
  std::int64_t ttl_seconds = 0;   // how long the approval lasts (0: the run)
  std::string code;           // what a person types to approve (tty, `kz approve`)
  std::int64_t deadline_ms = 0;   // steady clock, ms
  long pid = 0;
  std::string exe;
};

enum class ApprovalVerdict : std::uint8_t { Approved, Denied, Timeout };
const char* verdict_name(ApprovalVerdict v);   // "approved" | "denied" | "timeout"

struct ApprovalAnswer {
  ApprovalAsk ask;
  ApprovalVerdict verdict = ApprovalVerdict::Timeout;
  std::string by;        // who answered ("terminal", a webhook's "by", "kz approve")
  std::string channel;   // "tty" | "socket" | "webhook" | "timeout" | "stop"
};

// One ask to an approval webhook (kz run --approve-via, a bundle's approvals: webhook):
// POSTs `facts` (JSON, with "request_hash") and reads the answer from the response,
// {"decision": "approve"|"deny", "request_hash": "<the same>", "by": "..."}. Approved
// only when the answer names this request's hash; an error status, a transport error or
// another hash denies; no answer by `deadline` (or `cancel`) is Timeout.
struct WebhookAnswer {
  ApprovalVerdict verdict = ApprovalVerdict::Timeout;
  std::string by;   // "webhook: <its by>", or why it was denied
};
WebhookAnswer ask_approval_webhook(const std::string& url, const std::string& ca_file, const std::string& facts_json,
                                   const std::string& request_hash, std::chrono::steady_clock::time_point deadline,
                                   const std::atomic<bool>* cancel = nullptr);

class ApprovalGate {
 public:
  // `timeout`: how long an ask waits for an answer before it fails closed.
  explicit ApprovalGate(std::chrono::milliseconds timeout);
  ~ApprovalGate();
  ApprovalGate(const ApprovalGate&) = delete;
  ApprovalGate& operator=(const ApprovalGate&) = delete;

  // Is an approval for `key` in force now?
  bool in_force(const std::string& key);
  // Opens an ask (id, code and deadline filled in) and wakes the channels; an ask for
  // the same key that is still open is returned instead (one prompt for both). With
  // kMaxOpenAsks asks open, a new one is not opened: the returned ask has id 0 (the
  // caller refuses the use), so an agent cannot bury the real ask under its own.
  // `created` (optional) says whether this call opened the ask (its "asked" record is
  // the caller's to write) or joined one already open.
  ApprovalAsk open(ApprovalAsk facts, bool* created = nullptr);
  static constexpr std::size_t kMaxOpenAsks = 16;
  // The open asks, oldest first.
  std::vector<ApprovalAsk> open_asks();
  // Is this ask still open?
  bool is_open(std::uint64_t id);
  // Waits until the set of open asks changes (an ask opened or answered, or stop) or
  // `until` passes; returns the version seen (start with 0).
  std::uint64_t wait_change(std::uint64_t seen, std::chrono::steady_clock::time_point until);
  // A channel's answer. False when the ask is no longer open (answered elsewhere, timed out).
  bool answer(std::uint64_t id, ApprovalVerdict v, std::string by, std::string channel);
  // The open ask a person's code names (nullopt: none).
  std::optional<ApprovalAsk> find_code(std::string_view code);
  // Times out the asks past their deadline (the broker calls it when its poll wakes).
  void expire();
  // The answers not yet taken (the broker sends the held replies and records them).
  std::vector<ApprovalAnswer> take_answers();
  // Blocks until ask `id` is answered (or its deadline passes: Timeout, "timeout"; or the
  // gate stops: Timeout, "stop") and returns the answer. For a caller that holds a use on
  // its own thread (the fallback proxy); the broker's take_answers() still gets it too.
  ApprovalAnswer await(std::uint64_t id);
  static constexpr std::size_t kMaxFinished = 256;   // answers kept for await()
  // Whether answers are kept for take_answers() (default). Off when nothing takes them
  // (no broker: --blind=proxy), so they do not pile up for the whole run.
  void keep_answers(bool keep);
  // Readable while answers wait to be taken (an eventfd; the broker polls it).
  int answered_fd() const { return event_fd_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // Milliseconds until the nearest deadline (-1: no open ask).
  int ms_to_next_deadline();
  // Ends every open ask (Timeout, channel "stop") and wakes the channels for good.
  void stop();
  bool stopped();

 private:
  void answer_locked(std::map<std::uint64_t, ApprovalAsk>::iterator it, ApprovalVerdict v, std::string by,
                     std::string channel);
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t next_id_ = 1, version_ = 1;
  bool stopped_ = false;
  bool keep_answers_ = true;
  std::map<std::uint64_t, ApprovalAsk> open_;
  std::map<std::string, std::int64_t> in_force_;   // key -> expiry (steady ms; INT64_MAX: the run)
  std::vector<ApprovalAnswer> answers_;
  std::map<std::uint64_t, ApprovalAnswer> finished_;   // the last kMaxFinished answers, by ask id
  int event_fd_ = -1;
};

}  // namespace kz
