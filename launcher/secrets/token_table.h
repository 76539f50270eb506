// The tokens that stand for secrets, and the secrets they stand for: one table for blind
// runs and for MCP.
//
// A blind run's entries are built once, before the agent starts, from the resolved
// secrets (build); they are read-only afterwards, so the broker thread reads them
// without locks, and looked up by constant-time comparison (the shim asks by token, by
// a token's start and by value).
//
// MCP's `resolve` issues entries at runtime (issue), each for one identity (its owner)
// until it expires, within limits on how many are live. Those are looked up by the
// SHA-256 of the token, so the map's hashing and comparisons never run over token text
// an agent could probe byte by byte; they are guarded by a mutex (the HTTP server calls
// from its I/O threads) and handed out as shared_ptr (an entry may expire while a fetch
// still uses it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/result.h"
#include "kz/secret.h"
#include "kz/wire/protocol.h"
#include "secrets/binding.h"
#include "secrets/resolved_secret.h"
#include "secrets/token_mint.h"

namespace kz {

class LiveValue;

// One token and the secret it stands for.
struct TokenEntry {
  std::string name;             // the secret's name
  std::string provider, ref;    // where its value came from (what MCP's policy decides on)
  SecretValue value;            // what the token stands for (after shown_prefix)
  SecretValue token;            // a credential while it lives: in locked memory too
  // Tokens that look right (token_mint.h): the value's vendor prefix ("sk-proj-"), which
  // the agent's copy has before the token. `value` then holds only the rest of the value
  // and `token` is as long as that rest; the prefix is public and never swapped.
  std::string shown_prefix;
  std::string token_id;         // short hash for audit records (token_mint.h)
  Binding binding;
  // A blind run's entries: the handles of the shim protocol.
  std::uint32_t id = 0;         // index + 1, stable for the run
  std::uint64_t fp_hash = 0;    // inbound fingerprint of the value (wire/fingerprint.h)
  std::uint64_t fq_hash = 0;    // its quick filter hash (fq_hash under fq_base)
  // Fingerprints of the value's other encoded forms (wire/value_forms.h): distinct from the
  // raw value and from each other, each at most wire::kMaxFormLen bytes. Of the whole
  // value (shown_prefix and `value`).
  std::vector<wire::FormPrint> form_prints;
  // A canary (secrets/canary.h): a decoy with no value (`value` is empty), bound
  // nowhere; whoever sends its token is reported.
  bool canary = false;
  // Rotation (resolve/refresher.h): the value may be replaced while the run goes on
  // (replace_value), so it is never granted per connection (every swap asks the broker
  // and gets the value of the moment); `expired`: its last good value has expired and
  // no refresh has succeeded since, so every swap of it is refused (fail closed).
  bool rotates = false;
  bool expired = false;
  // The values replace_value put aside (after shown_prefix, newest last, at most
  // kRetiredKept): a response may still echo one (a request sent before the rotation, its
  // answer read after), and the old value may still work at its server, so inbound
  // redaction keeps matching them until the run ends.
  std::vector<SecretValue> retired;
  // A minted credential (secrets/live_value.h): the value swapped in is live->current(),
  // not `value` (the first one); its token is longer than that first value (room for a
  // renewed one that grows a little), and never granted per connection.
  std::shared_ptr<LiveValue> live;
  // A client secret with mint_hosts (config.h): tokens in the responses on its
  // connections are sealed and bound to these hosts.
  std::vector<std::string> mint_hosts;
  // Issued entries (MCP).
  std::string owner;            // the identity that resolved it ("iss sub", or "local")
  std::int64_t expires_at = 0;  // Unix seconds (unix_now)
};

// How many issued tokens may be live: in all, and per owner (one agent calling resolve
// in a loop must not crowd out the others).
struct IssueLimits {
  std::size_t max_live = 100000;
  std::size_t max_per_owner = 1000;
};

struct Minted {
  std::string token;            // the token text, for the agent (not a secret value)
  std::shared_ptr<const TokenEntry> entry;
};

class TokenTable {
 public:
  explicit TokenTable(IssueLimits limits = {});
  TokenTable(TokenTable&&) noexcept;
  TokenTable& operator=(TokenTable&&) noexcept;
  ~TokenTable();

  // ---- A blind run's entries ----
  // Takes the resolved values; mints a token for each (as long as the value when that is
  // ≥ 24 bytes). Values longer than wire::kMaxSecretLen are refused (blind mode carries
  // them in fixed-size messages). With TokenShape::Auto a value with a known vendor
  // prefix keeps it (shown_prefix) and its token stands for the rest.
  static Result<TokenTable> build(std::vector<ResolvedSecret> secrets,
                                  const std::vector<std::pair<std::string, Binding>>& bindings,
                                  TokenShape shape = TokenShape::Plain,
                                  const std::vector<std::string>& rotating = {});

  // ---- Rotation of a blind run's values ----
  // The blind entries' value, fingerprints and `expired` change only under the writer
  // side of this lock, and every reader that looks at them (decide) holds the reader
  // side for as long as it uses an entry: a swap sees the old value or the new one,
  // whole, never a mix. The entries themselves (names, tokens, bindings) never change.
  std::shared_lock<std::shared_mutex> read_lock() const { return std::shared_lock(*rotation_mu_); }
  // Puts `value` (the whole value, as a provider returned it) in place of the secret
  // `name`'s (a `rotates` entry) and clears `expired`. The old value joins `retired`
  // (the oldest beyond kRetiredKept is wiped). The token
  // stays: refused when the new value is empty, too long for blind mode, or does not
  // start with the prefix the agent's token shows. Returns whether the value changed.
  Result<bool> replace_value(const std::string& name, SecretValue value);
  // Marks the secret's value expired (true) or usable again (false).
  void set_expired(const std::string& name, bool expired);

  // A canary's entry (no value, bound nowhere) for `token` (minted by the caller,
  // secrets/canary.h): blind mode adds one per canary after build(), before the table
  // is shared.
  void add_canary(std::string name, SecretValue token);

  const std::vector<TokenEntry>& secrets() const { return secrets_; }
  // Constant-time comparisons over every token (no early exit on a match).
  const TokenEntry* find_token(std::string_view text) const;
  // A secret whose token begins with `text` (and is longer than it).
  const TokenEntry* find_token_start(std::string_view text) const;
  const TokenEntry* find_value(std::string_view bytes) const;
  // A secret whose value, encoded in `form`, is exactly `bytes` (constant-time over all).
  // The whole value, shown_prefix included: answer with token_as_shown in that form.
  // With a kept prefix, also the rest alone in a base64 or hex form (value_form_prints):
  // then *rest is set, and the answer is the bare token in that form.
  const TokenEntry* find_value_in_form(std::string_view bytes, wire::ValueForm form, bool* rest = nullptr) const;
  // Some token is longer than its value: the shim must fix up HTTP framing.
  bool needs_length_fixup() const;
  std::uint64_t fp_base() const { return fp_base_; }
  std::uint64_t fq_base() const { return fq_base_; }

  // ---- Entries issued at runtime (MCP) ----
  // Mints a token for `e` (name, provider, ref, owner, value, binding, expires_at set by
  // the caller). Fails when the limits are reached. Drops expired entries first.
  Result<Minted> issue(TokenEntry e);
  // The same for a token made elsewhere (a sealed MCP token that another replica issued,
  // mcp/replica_seal.h): `token` is its text; the limits apply.
  Result<Minted> adopt(std::string token, TokenEntry e);
  // The issued entry for `token`, or null when unknown or expired.
  std::shared_ptr<const TokenEntry> find(std::string_view token, std::int64_t now) const;
  // The unexpired entries of one owner (for redacting their values from responses).
  std::vector<std::shared_ptr<const TokenEntry>> owned_by(const std::string& owner, std::int64_t now) const;
  void expire(std::int64_t now);

 private:
  struct Issued;   // the mutex and the entries by hash

  std::vector<TokenEntry> secrets_;
  std::uint64_t fp_base_ = 0;
  std::uint64_t fq_base_ = 0;
  std::unique_ptr<Issued> issued_;
  std::unique_ptr<std::shared_mutex> rotation_mu_ = std::make_unique<std::shared_mutex>();
};

// The fingerprints (under base, qbase) of each encoded form of `value` that differs from
// the raw value and from the forms before it (wire/value_forms.h).
std::vector<wire::FormPrint> form_prints_of(std::string_view value, std::uint64_t base, std::uint64_t qbase);
// form_prints_of(whole), then, when the first `keep` bytes are a kept prefix, the base64
// and hex forms of the rest (what the token stands for) not among them.
std::vector<wire::FormPrint> value_form_prints(std::string_view whole, std::size_t keep, std::uint64_t base,
                                               std::uint64_t qbase);

// What the agent is given for `e`: its shown_prefix, then its token.
SecretValue token_as_shown(const TokenEntry& e);

// The current time, Unix seconds: the clock of expires_at (one place, so callers and
// tests reason about expiry the same way).
std::int64_t unix_now();

}  // namespace kz
