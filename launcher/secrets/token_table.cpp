#include "secrets/token_table.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "kz/digest.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/token.h"
#include "secrets/live_value.h"
#include "secrets/token_mint.h"

namespace kz {

namespace {

// An issued token is "KZ_TOK_" and base62; 40 bytes gives 33 random characters (≥ 190
// bits). It stands for no particular value length (nothing reframes MCP requests).
constexpr std::size_t kIssuedTokenLen = 40;

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

struct TokenTable::Issued {
  IssueLimits limits;
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const TokenEntry>> by_hash;   // SHA-256 hex of the token
};

// The fingerprints of every encoded form of `value` that differs from the raw value and
// from the forms before it; forms past wire::kMaxFormLen are left out. The encodings are
// built in locked memory and wiped.
std::vector<wire::FormPrint> form_prints_of(std::string_view value, std::uint64_t base, std::uint64_t qbase) {
  std::vector<wire::FormPrint> out;
  SecretValue enc = SecretValue::allocate(wire::kMaxFormLen * wire::kValueFormCount);
  std::size_t lens[wire::kValueFormCount] = {};
  const auto* in = reinterpret_cast<const unsigned char*>(value.data());
  for (std::size_t f = 1; f < wire::kValueFormCount; ++f) {
    char* at = enc.data() + f * wire::kMaxFormLen;
    const std::size_t n = wire::encode_form(static_cast<wire::ValueForm>(f), in, value.size(), at, wire::kMaxFormLen);
    if (n == 0 || std::string_view(at, n) == value) continue;
    bool dup = false;
    for (std::size_t g = 1; g < f && !dup; ++g)
      dup = lens[g] == n && std::memcmp(enc.data() + g * wire::kMaxFormLen, at, n) == 0;
    if (dup) continue;
    lens[f] = n;
    const auto* bytes = reinterpret_cast<const unsigned char*>(at);
    out.push_back({wire::fp_hash(bytes, n, base), wire::fq_hash(bytes, n, qbase), static_cast<std::uint32_t>(n),
                   static_cast<std::uint32_t>(f)});
  }
  return out;
}

namespace {
// The forms a server returns a stored item in on its own (GitHub's blobs: base64):
// the rest of a kept-prefix value is fingerprinted in these too.
bool is_rest_form(wire::ValueForm f) {
  return f == wire::ValueForm::Base64 || f == wire::ValueForm::Base64NoPad || f == wire::ValueForm::Base64Url ||
         f == wire::ValueForm::Base64UrlNoPad || f == wire::ValueForm::HexLower || f == wire::ValueForm::HexUpper;
}
}  // namespace

std::vector<wire::FormPrint> value_form_prints(std::string_view whole, std::size_t keep, std::uint64_t base,
                                               std::uint64_t qbase) {
  std::vector<wire::FormPrint> out = form_prints_of(whole, base, qbase);
  if (keep == 0 || keep >= whole.size()) return out;
  for (const auto& p : form_prints_of(whole.substr(keep), base, qbase)) {
    if (!is_rest_form(static_cast<wire::ValueForm>(p.form))) continue;
    if (std::none_of(out.begin(), out.end(), [&](const wire::FormPrint& q) { return q.len == p.len && q.hash == p.hash; }))
      out.push_back(p);
  }
  return out;
}

SecretValue token_as_shown(const TokenEntry& e) { return token_with_prefix(e.shown_prefix, e.token.view()); }

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

TokenTable::TokenTable(IssueLimits limits) : issued_(std::make_unique<Issued>()) { issued_->limits = limits; }
TokenTable::TokenTable(TokenTable&&) noexcept = default;
TokenTable& TokenTable::operator=(TokenTable&&) noexcept = default;
TokenTable::~TokenTable() = default;

Result<TokenTable> TokenTable::build(std::vector<ResolvedSecret> secrets,
                                     const std::vector<std::pair<std::string, Binding>>& bindings,
                                     TokenShape shape, const std::vector<std::string>& rotating) {
  TokenTable t;
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return make_error(ErrorKind::Internal, "the random number generator failed");
  std::uint64_t base = 0;
  for (unsigned char c : rnd) base = (base << 8) | c;
  // A base of 0 or 1 would make the fingerprint trivial.
  t.fp_base_ = 2 + base % (wire::kFingerprintModulus - 3);
  unsigned char qrnd[8];
  if (RAND_bytes(qrnd, sizeof qrnd) != 1) return make_error(ErrorKind::Internal, "the random number generator failed");
  for (unsigned char c : qrnd) t.fq_base_ = (t.fq_base_ << 8) | c;
  t.fq_base_ |= 1;   // odd: invertible mod 2^64
  for (auto& r : secrets) {
    if (r.value.size() > wire::kMaxSecretLen)
      return make_error(ErrorKind::Config, "secret " + r.name + " is longer than " +
                                               std::to_string(wire::kMaxSecretLen) +
                                               " bytes, the most blind mode can carry");
    if (r.value.empty())
      return make_error(ErrorKind::Config, "secret " + r.name + " is empty and cannot be used in blind mode");
    TokenEntry e;
    e.name = r.name;
    for (const auto& [name, binding] : bindings)
      if (name == e.name) e.binding = binding;
    e.mint_hosts = e.binding.mint_hosts;
    // format = "aws-credentials": the key id came with the key (resolved_secret.h).
    if (!r.access_key_id.empty()) e.binding.access_key_id = r.access_key_id;
    // A kept prefix stays in the agent's copy: the token stands for the rest only, so a
    // swap (and an inbound redaction) replaces as many bytes as it finds. A signing key
    // (sign = "sigv4") is never sent, so it has no shape to keep.
    // A minted credential's value changes during the run: no prefix of the first one stays.
    // First a class-shaped token (token_mint.h); a JWT keeps its header and payload only
    // when its value does not rotate (a renewed JWT has other claims).
    e.provider = r.provider;
    e.rotates = std::find(rotating.begin(), rotating.end(), e.name) != rotating.end();
    SecretValue classed;
    if (e.binding.sign.empty() && !r.source) {
      const std::string_view keep = classed_prefix_for(r.value.view(), shape, !e.rotates);
      if (!keep.empty()) {
        auto c = mint_classed_token(r.value.view().substr(keep.size()), classed_layout_for(r.value.view(), keep));
        if (!c) return c.take_error();
        if (!c->empty()) {
          e.shown_prefix = std::string(keep);
          classed = std::move(*c);
        }
      }
      // The fallback: the vendor prefix and a plain token, or a bare plain token.
      if (classed.empty()) e.shown_prefix = std::string(token_prefix_for(r.value.view(), shape));
    }
    // The encoded forms are those of the whole value: base64 of the rest is no part of
    // base64 of the whole, so a server that echoes the key base64-encoded is still caught.
    // With a kept prefix, the rest's base64 and hex forms too: the agent may store the
    // bare token and read it back encoded (review 27b #3).
    e.form_prints = value_form_prints(r.value.view(), e.shown_prefix.size(), t.fp_base_, t.fq_base_);
    if (!e.shown_prefix.empty()) r.value = SecretValue::from(r.value.view().substr(e.shown_prefix.size()));
    // A minted credential's token has room for a renewed value a little longer than the
    // first (a value longer than the token is refused at the swap: fail closed).
    const std::size_t room = r.source ? std::min(wire::kMaxTokenLen, r.value.size() + std::max<std::size_t>(16, r.value.size() / 4)) : 0;
    auto tok = classed.empty() ? mint_token(std::max(wire::token_length_for(r.value.size()), room))
                               : Result<SecretValue>(std::move(classed));
    if (!tok) return tok.take_error();
    e.id = static_cast<std::uint32_t>(t.secrets_.size() + 1);
    e.token = std::move(*tok);
    e.token_id = token_id(e.token.view());
    e.fp_hash = wire::fp_hash(reinterpret_cast<const unsigned char*>(r.value.view().data()), r.value.size(), t.fp_base_);
    e.value = std::move(r.value);
    e.fq_hash = wire::fq_hash(reinterpret_cast<const unsigned char*>(e.value.view().data()), e.value.size(), t.fq_base_);
    if (r.source) {
      e.live = std::make_shared<LiveValue>(std::move(r.source), r.refresh_skew, t.fp_base_, t.fq_base_);
      e.live->set(FreshValue{SecretValue::from(e.value.view()), r.expires_in}, unix_now());
    }
    t.secrets_.push_back(std::move(e));
  }
  return t;
}

void TokenTable::add_canary(std::string name, SecretValue token) {
  TokenEntry e;
  e.name = std::move(name);
  e.provider = "canary";
  e.canary = true;
  e.id = static_cast<std::uint32_t>(secrets_.size() + 1);
  e.token = std::move(token);
  e.token_id = token_id(e.token.view());
  secrets_.push_back(std::move(e));
}

const TokenEntry* TokenTable::find_token(std::string_view text) const {
  const TokenEntry* hit = nullptr;
  for (const auto& s : secrets_)
    if (same(s.token.view(), text)) hit = &s;
  return hit;
}

const TokenEntry* TokenTable::find_token_start(std::string_view text) const {
  const TokenEntry* hit = nullptr;
  for (const auto& s : secrets_)
    if (s.token.size() > text.size() && same(s.token.view().substr(0, text.size()), text)) hit = &s;
  return hit;
}

const TokenEntry* TokenTable::find_value_in_form(std::string_view bytes, wire::ValueForm form, bool* rest) const {
  if (rest != nullptr) *rest = false;
  if (form == wire::ValueForm::Raw) return find_value(bytes);
  if (bytes.size() > wire::kMaxFormLen) return nullptr;
  SecretValue enc = SecretValue::allocate(wire::kMaxFormLen);
  const TokenEntry* hit = nullptr;
  for (const auto& s : secrets_) {
    if (s.canary) continue;   // no value
    // Forms are matched on the whole value (shown_prefix and the rest), as fingerprinted.
    std::optional<LiveValue::Snapshot> now;
    if (s.live) now = s.live->current(unix_now());
    // With a kept prefix, also the rest alone in the forms it is fingerprinted in.
    const bool try_rest = !s.shown_prefix.empty() && is_rest_form(form);
    const auto encoded_is = [&](std::string_view v) {
      const std::size_t n = wire::encode_form(form, reinterpret_cast<const unsigned char*>(v.data()), v.size(),
                                              enc.data(), wire::kMaxFormLen);
      return n > 0 && same(std::string_view(enc.data(), n), bytes);
    };
    const auto matches = [&](std::string_view r) {
      const SecretValue whole = token_with_prefix(s.shown_prefix, r);
      bool whole_hit = encoded_is(whole.view());
      bool rest_hit = try_rest && encoded_is(r);
      if (whole_hit || rest_hit) {
        hit = &s;
        if (rest != nullptr) *rest = !whole_hit;
      }
    };
    matches(now ? now->value.view() : s.value.view());
    for (const auto& old : s.retired) matches(old.view());
    if (s.live)
      for (const auto& old : s.live->retired(unix_now())) matches(old.view());
  }
  return hit;   // enc is wiped when it goes
}

const TokenEntry* TokenTable::find_value(std::string_view bytes) const {
  const TokenEntry* hit = nullptr;
  for (const auto& s : secrets_) {
    if (s.canary) continue;
    if (s.live ? s.live->is_value(bytes, unix_now()) : same(s.value.view(), bytes)) hit = &s;
    for (const auto& old : s.retired)
      if (same(old.view(), bytes)) hit = &s;
  }
  return hit;
}

bool TokenTable::needs_length_fixup() const {
  // A value that rotates may come back another length than the token's.
  return std::any_of(secrets_.begin(), secrets_.end(),
                     [](const TokenEntry& s) { return !s.canary && (s.rotates || s.live || s.token.size() != s.value.size()); });
}

Result<bool> TokenTable::replace_value(const std::string& name, SecretValue value) {
  TokenEntry* e = nullptr;
  for (auto& s : secrets_)
    if (s.name == name && !s.canary) e = &s;
  if (e == nullptr || !e->rotates) return make_error(ErrorKind::Internal, "secret " + name + " does not rotate");
  if (value.empty()) return make_error(ErrorKind::Protocol, "the new value is empty");
  if (value.size() > wire::kMaxSecretLen)
    return make_error(ErrorKind::Protocol, "the new value is longer than " + std::to_string(wire::kMaxSecretLen) +
                                               " bytes, the most blind mode can carry");
  if (value.view().substr(0, e->shown_prefix.size()) != e->shown_prefix)
    return make_error(ErrorKind::Protocol, "the new value does not start with \"" + e->shown_prefix +
                                               "\", the prefix the agent's token shows");
  // Everything derived from the value is made before the lock: the broker waits only
  // for the moves.
  auto prints = value_form_prints(value.view(), e->shown_prefix.size(), fp_base_, fq_base_);
  SecretValue rest = SecretValue::from(value.view().substr(e->shown_prefix.size()));
  const auto* bytes = reinterpret_cast<const unsigned char*>(rest.view().data());
  const std::uint64_t fp = wire::fp_hash(bytes, rest.size(), fp_base_);
  const std::uint64_t fq = wire::fq_hash(bytes, rest.size(), fq_base_);
  bool changed;
  {
    std::unique_lock lock(*rotation_mu_);
    changed = !same(e->value.view(), rest.view());
    if (changed) {
      std::swap(e->value, rest);   // `rest` is now the old value
      e->fp_hash = fp;
      e->fq_hash = fq;
      e->form_prints = std::move(prints);
      // Moving SecretValues moves their buffers: nothing is left behind to wipe.
      if (e->retired.size() == kRetiredKept) e->retired.erase(e->retired.begin());
      e->retired.push_back(std::move(rest));
    }
    e->expired = false;
  }
  return changed;   // rest (the unused copy, when unchanged) is wiped as it goes
}

void TokenTable::set_expired(const std::string& name, bool expired) {
  std::unique_lock lock(*rotation_mu_);
  for (auto& s : secrets_)
    if (s.name == name && !s.canary) s.expired = expired;
}

void TokenTable::expire(std::int64_t now) {
  std::lock_guard lock(issued_->mu);
  std::erase_if(issued_->by_hash, [now](const auto& kv) { return kv.second->expires_at <= now; });
}

Result<Minted> TokenTable::issue(TokenEntry e) {
  auto tok = mint_token(kIssuedTokenLen);
  if (!tok) return tok.take_error();
  std::string text(tok->view());
  return adopt(std::move(text), std::move(e));
}

Result<Minted> TokenTable::adopt(std::string text, TokenEntry e) {
  expire(unix_now());
  e.token = SecretValue::from(text);
  e.token_id = token_id(text);
  auto entry = std::make_shared<const TokenEntry>(std::move(e));
  const IssueLimits& lim = issued_->limits;
  std::lock_guard lock(issued_->mu);
  if (issued_->by_hash.size() >= lim.max_live)
    return make_error(ErrorKind::Denied, "too many live tokens (" + std::to_string(lim.max_live) + "); try again when some expire");
  std::size_t owned = 0;
  for (const auto& [h, other] : issued_->by_hash) owned += other->owner == entry->owner;
  if (owned >= lim.max_per_owner)
    return make_error(ErrorKind::Denied, "this identity holds " + std::to_string(owned) +
                                             " live tokens already; reuse one (they stay valid until they expire)");
  issued_->by_hash[sha256_hex(text)] = entry;
  return Minted{std::move(text), std::move(entry)};
}

std::shared_ptr<const TokenEntry> TokenTable::find(std::string_view token, std::int64_t now) const {
  const std::string h = sha256_hex(token);
  std::lock_guard lock(issued_->mu);
  auto it = issued_->by_hash.find(h);
  if (it == issued_->by_hash.end() || it->second->expires_at <= now) return nullptr;
  return it->second;
}

std::vector<std::shared_ptr<const TokenEntry>> TokenTable::owned_by(const std::string& owner, std::int64_t now) const {
  std::vector<std::shared_ptr<const TokenEntry>> out;
  std::lock_guard lock(issued_->mu);
  for (const auto& [h, e] : issued_->by_hash)
    if (e->owner == owner && e->expires_at > now) out.push_back(e);
  return out;
}

}  // namespace kz
