#include "secrets/decide_seal.h"

#include <openssl/crypto.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "kz/wire/fingerprint.h"
#include "kz/wire/value_forms.h"
#include "secrets/token_mint.h"

namespace kz {

namespace {

void refuse(wire::Reply& rep, OAuthMint& m, std::string why) {
  rep.decision = wire::Decision::Refuse;
  const std::size_t n = std::min(why.size(), wire::kMaxReason);
  std::memcpy(rep.reason, why.data(), n);
  rep.reason_len = static_cast<std::uint16_t>(n);
  m.decision = "error";
  m.reason = std::move(why);
}

}  // namespace

void decide_seal(const DecideContext& ctx, const wire::Request& req, const PeerProcess& peer, wire::Reply& rep,
                 OAuthMint& m) {
  m.source = "response";
  m.pid = static_cast<long>(peer.pid);
  m.host = std::string(req.host, req.host_len);
  const TokenEntry* s = nullptr;
  for (const auto& e : ctx.table->secrets())
    if (e.id == req.form && !e.canary) s = &e;
  if (s == nullptr || s->mint_hosts.empty() || ctx.sealed == nullptr) {
    m.secret = s != nullptr ? s->name : "";
    return refuse(rep, m, "no client secret of this run with mint_hosts armed this connection: not sealed");
  }
  m.secret = s->name;
  if (std::string why = request_refusal(ctx, req, *s, false); !why.empty())
    return refuse(rep, m, "not sealed: " + why);
  const std::string_view value(reinterpret_cast<const char*>(req.data), req.data_len);
  if (value.size() < wire::kMinTokenLen)
    return refuse(rep, m, "the token in the response is shorter than " + std::to_string(wire::kMinTokenLen) +
                              " bytes: no token of its length can stand for it; the read failed");
  TokenEntry e;
  e.name = s->name + "/sealed";
  e.provider = "sealed";
  e.value = SecretValue::from(value);
  e.binding.hosts = s->mint_hosts;
  // No mint_hosts of its own: a swap of a sealed token does not arm sealing, else every
  // answer of the API it is used at (an echo, any long string) would be held for a Seal
  // the client secret's binding refuses there, and fail the read.
  e.id = s->id;
  const auto* bytes = reinterpret_cast<const unsigned char*>(value.data());
  e.fp_hash = wire::fp_hash(bytes, value.size(), ctx.table->fp_base());
  e.fq_hash = wire::fq_hash(bytes, value.size(), ctx.table->fq_base());
  e.form_prints = form_prints_of(value, ctx.table->fp_base(), ctx.table->fq_base());
  e.owner = sealed_owner(s->name);
  e.expires_at = (ctx.now != 0 ? ctx.now : unix_now()) + kSealedTokenSeconds;
  if (ctx.on_sealed) ctx.on_sealed(value);   // masked before any token stands for it
  auto tok = mint_token(value.size());
  if (!tok) return refuse(rep, m, tok.error().message);
  auto made = ctx.sealed->adopt(std::string(tok->view()), std::move(e));
  if (!made) return refuse(rep, m, "not sealed: " + made.error().message);
  rep.decision = wire::Decision::Allow;
  std::memcpy(rep.data, made->token.data(), made->token.size());
  rep.data_len = static_cast<std::uint32_t>(made->token.size());
  rep.secret_id = s->id;
  m.decision = "ok";
  m.secret = made->entry->name;
  m.token_id = made->entry->token_id;
  explicit_bzero(made->token.data(), made->token.size());
}

std::string sealed_owner(const std::string& client_secret_name) { return "sealed " + client_secret_name; }

std::shared_ptr<const TokenEntry> find_sealed_value(const TokenTable& table, std::string_view bytes, wire::ValueForm form,
                                                    std::int64_t now) {
  if (bytes.size() > wire::kMaxFormLen && form != wire::ValueForm::Raw) return nullptr;
  SecretValue enc = SecretValue::allocate(wire::kMaxFormLen);
  std::shared_ptr<const TokenEntry> hit;
  std::vector<std::shared_ptr<const TokenEntry>> sealed;
  for (const auto& s : table.secrets())
    if (!s.mint_hosts.empty())
      for (auto& e : table.owned_by(sealed_owner(s.name), now)) sealed.push_back(std::move(e));
  for (auto& e : sealed) {
    std::string_view v = e->value.view();
    if (form != wire::ValueForm::Raw) {
      const std::size_t n = wire::encode_form(form, reinterpret_cast<const unsigned char*>(v.data()), v.size(),
                                              enc.data(), wire::kMaxFormLen);
      v = std::string_view(enc.data(), n);
    }
    if (v.size() == bytes.size() && CRYPTO_memcmp(v.data(), bytes.data(), v.size()) == 0) hit = std::move(e);
  }
  return hit;
}

}  // namespace kz
