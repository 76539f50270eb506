#include "mcp/token_store.h"

#include <ctime>

#include "secrets/token_mint.h"
#include "kz/digest.h"

namespace kz::mcp {

namespace {

// Token text is "KZ_TOK_" and base62; 40 bytes gives 33 random characters (≥ 190 bits).
constexpr std::size_t kTokenLen = 40;
constexpr std::string_view kPrefix = "KZ_TOK_";

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

void TokenStore::expire(std::int64_t now) {
  std::lock_guard lock(mu_);
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    if (it->second->expires_at <= now) it = by_hash_.erase(it);
    else ++it;
  }
}

Result<Minted> TokenStore::issue(IssuedToken t) {
  expire(unix_now());
  auto tok = mint_token(kTokenLen);
  if (!tok) return tok.take_error();
  const std::string text(tok->view());
  t.token = text;
  t.token_id = token_id(text);
  auto entry = std::make_shared<const IssuedToken>(std::move(t));
  std::lock_guard lock(mu_);
  if (by_hash_.size() >= max_live_)
    return make_error(ErrorKind::Denied, "too many live tokens (" + std::to_string(max_live_) + "); try again when some expire");
  std::size_t owned = 0;
  for (const auto& [h, e] : by_hash_) owned += e->owner == entry->owner;
  if (owned >= max_per_owner_)
    return make_error(ErrorKind::Denied, "this identity holds " + std::to_string(owned) +
                                             " live tokens already; reuse one (they stay valid until they expire)");
  by_hash_[sha256_hex(text)] = entry;
  return Minted{text, std::move(entry)};
}

std::shared_ptr<const IssuedToken> TokenStore::find(std::string_view token, std::int64_t now) const {
  const std::string h = sha256_hex(token);
  std::lock_guard lock(mu_);
  auto it = by_hash_.find(h);
  if (it == by_hash_.end() || it->second->expires_at <= now) return nullptr;
  return it->second;
}

std::vector<std::shared_ptr<const IssuedToken>> TokenStore::owned_by(const std::string& owner, std::int64_t now) const {
  std::vector<std::shared_ptr<const IssuedToken>> out;
  std::lock_guard lock(mu_);
  for (const auto& [h, t] : by_hash_)
    if (t->owner == owner && t->expires_at > now) out.push_back(t);
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> find_token_texts(std::string_view text) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t pos = 0;
  while ((pos = text.find(kPrefix, pos)) != std::string_view::npos) {
    std::size_t end = pos + kPrefix.size();
    while (end < text.size() && is_token_char(text[end])) ++end;
    if (end > pos + kPrefix.size()) out.emplace_back(pos, end - pos);
    pos = end;
  }
  return out;
}

}  // namespace kz::mcp
