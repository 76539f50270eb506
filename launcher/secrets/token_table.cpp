#include "secrets/token_table.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>

#include "secrets/token_mint.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/token.h"

namespace kz {

Result<TokenTable> TokenTable::build(std::vector<ResolvedSecret> secrets,
                                     const std::vector<std::pair<std::string, Binding>>& bindings) {
  TokenTable t;
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return make_error(ErrorKind::Internal, "the random number generator failed");
  std::uint64_t base = 0;
  for (unsigned char c : rnd) base = (base << 8) | c;
  // A base of 0 or 1 would make the fingerprint trivial.
  t.fp_base_ = 2 + base % (wire::kFingerprintModulus - 3);
  for (auto& r : secrets) {
    if (r.value.size() > wire::kMaxSecretLen)
      return make_error(ErrorKind::Config, "secret " + r.name + " is longer than " +
                                               std::to_string(wire::kMaxSecretLen) +
                                               " bytes, the most blind mode can carry");
    if (r.value.empty())
      return make_error(ErrorKind::Config, "secret " + r.name + " is empty and cannot be used in blind mode");
    auto tok = mint_token(wire::token_length_for(r.value.size()));
    if (!tok) return tok.take_error();
    BlindSecret b;
    b.name = r.name;
    b.id = static_cast<std::uint32_t>(t.secrets_.size() + 1);
    b.token = std::move(*tok);
    b.token_id = token_id(b.token.view());
    b.fp_hash = wire::fp_hash(reinterpret_cast<const unsigned char*>(r.value.view().data()), r.value.size(), t.fp_base_);
    b.value = std::move(r.value);
    for (const auto& [name, binding] : bindings)
      if (name == b.name) b.binding = binding;
    t.secrets_.push_back(std::move(b));
  }
  return t;
}

namespace {

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

const BlindSecret* TokenTable::find_token(std::string_view text) const {
  const BlindSecret* hit = nullptr;
  for (const auto& s : secrets_)
    if (same(s.token.view(), text)) hit = &s;
  return hit;
}

const BlindSecret* TokenTable::find_token_start(std::string_view text) const {
  const BlindSecret* hit = nullptr;
  for (const auto& s : secrets_)
    if (s.token.size() > text.size() && same(s.token.view().substr(0, text.size()), text)) hit = &s;
  return hit;
}

const BlindSecret* TokenTable::find_value(std::string_view bytes) const {
  const BlindSecret* hit = nullptr;
  for (const auto& s : secrets_)
    if (same(s.value.view(), bytes)) hit = &s;
  return hit;
}

bool TokenTable::needs_length_fixup() const {
  return std::any_of(secrets_.begin(), secrets_.end(),
                     [](const BlindSecret& s) { return s.token.size() != s.value.size(); });
}

}  // namespace kz
