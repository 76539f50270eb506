// Canary tokens: decoy credentials with no value behind them. A secret declared with
// `canary = true` gets a made-up credential shaped like a real one of its name (an
// OpenAI key looks like `sk-proj-…`, a GitHub token like `ghp_…`), bound to no host.
// Nothing legitimate ever sends one, so any sight of it — at the shim or the proxy, on
// plain TCP, in an MCP fetch, in the command's output, in the TLS tap — is a "canary"
// audit record and, with on_canary = "kill", ends the run (CanaryAlarm).
//
// In a standard run the child's environment holds the fake value itself. In blind mode
// it holds the shape's prefix followed by a kz token (`sk-proj-KZ_TOK_…`), so the shim
// and the proxy find it with the scanner they already run on every write, and the
// broker's decision names it.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_recorder.h"
#include "kz/result.h"
#include "kz/secret.h"

namespace kz {

// A credential format as a template: '*' a base62 character, '#' a digit, '^' an
// upper-case letter or digit, '+' a base64 character; anything else is literal.
struct CanaryShape {
  std::string_view name;       // "openai", "github", ... (the `shape` key)
  std::string_view pattern;
};

// The shapes kz knows, by name; null when unknown.
const CanaryShape* find_canary_shape(std::string_view name);
// All of them (blind mode's tokens keep a value's prefix when it is one of theirs:
// token_mint.h).
std::span<const CanaryShape> canary_shapes();
// "openai, anthropic, ..." for error messages.
std::string canary_shape_names();
// The shape named `shape`, or ("" ) the one a secret's name suggests (OPENAI_API_KEY →
// openai, GITHUB_TOKEN → github, ...; "generic" otherwise).
const CanaryShape& canary_shape_for(std::string_view secret_name, std::string_view shape);
// The literal start of a shape ("sk-proj-", "ghp_", "" for generic).
std::string_view canary_prefix(const CanaryShape& s);

// A standard run's decoy: the pattern filled from RAND_bytes.
Result<SecretValue> make_canary_value(const CanaryShape& s);
// Blind mode's decoy: the shape's prefix, then `token` (a kz token of the run).
SecretValue canary_with_token(const CanaryShape& s, std::string_view token);

// Blind mode's decoy, class-shaped when the shape allows (and `shaped`), else the
// shape's prefix and a plain token of `plain_len` bytes: `token` is what the broker knows
// (the part after the kept prefix), `shown` what the agent's environment holds.
struct BlindCanary {
  SecretValue token;
  SecretValue shown;
};
Result<BlindCanary> make_blind_canary(const CanaryShape& s, bool shaped, std::size_t plain_len);

// What a sight of a canary does: one "canary" record, then (on_canary = "kill") the
// killer, once. Thread-safe: the broker thread, the proxy's threads, the output loop and
// the tap's reader may all raise it.
class CanaryAlarm {
 public:
  CanaryAlarm(AuditRecorder& audit, bool kill) : audit_(audit), kill_(kill) {}

  bool kills() const { return kill_; }
  // What killing means (end the run's processes). Set once the run's command exists;
  // a sight before that is recorded and the kill happens when it is set.
  void set_killer(std::function<void()> killer);
  // Records `seen` (its decision and reason completed here), then kills if configured.
  void raise(CanarySeen seen);
  // The first canary seen ("" when none): for the run's exit status and run.stop.
  std::string tripped() const;

 private:
  AuditRecorder& audit_;
  const bool kill_;
  mutable std::mutex mu_;
  std::function<void()> killer_;
  std::string first_;
  bool kill_pending_ = false;
  bool killed_ = false;
};

}  // namespace kz
