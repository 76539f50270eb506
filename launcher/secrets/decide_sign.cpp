#include "secrets/decide_sign.h"

#include <string.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "kz/sigv4.h"

namespace kz {

namespace {

const TokenEntry* signing_secret(const TokenTable& t, std::string_view akid) {
  if (akid.empty()) return nullptr;
  for (const TokenEntry& e : t.secrets())
    if (e.binding.sign == "sigv4" && e.binding.access_key_id == akid) return &e;
  return nullptr;
}

// The binding is checked against the request's method, target and Host as the wire
// request names them; the signature is made over head_text. A request written to the
// broker socket by the agent's own program could make the two differ (a permitted path
// in the fields, another in the head): refuse unless they are the same request.
std::string head_mismatch(const sigv4::Head& h, const wire::Request& req) {
  const std::string_view method(req.method, std::min<std::size_t>(req.method_len, sizeof req.method));
  const std::string_view path(req.path, std::min<std::size_t>(req.path_len, sizeof req.path));
  const std::string_view host(req.http_host, std::min<std::size_t>(req.http_host_len, sizeof req.http_host));
  if (h.method != method) return "the signed head's method is not the request's";
  const bool cut = path.size() == sizeof req.path;   // the wire keeps a prefix of a long target
  if (cut ? std::string_view(h.target).substr(0, path.size()) != path : h.target != path)
    return "the signed head's target is not the request's";
  const auto hosts = h.values("host");
  if (hosts.size() != 1 || sigv4::trim_blanks(hosts[0]) != host) return "the signed head's Host is not the request's";
  return {};
}

// A presigned URL's X-Amz-Expires in seconds; -1 when absent or not a plain number.
std::int64_t presign_expiry(std::string_view target) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return -1;
  for (std::string_view rest = target.substr(q + 1); !rest.empty();) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    constexpr std::string_view kName = "X-Amz-Expires=";
    if (pair.substr(0, kName.size()) != kName) continue;
    const std::string_view v = pair.substr(kName.size());
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string_view::npos) return -1;
    return std::stoll(std::string(v));
  }
  return -1;
}

const TokenEntry* secret_named(const TokenTable& t, const std::string& name) {
  for (const TokenEntry& e : t.secrets())
    if (e.name == name) return &e;
  return nullptr;
}

// head with every occurrence of the session token's token replaced by its value: the
// request as the server will receive it once the shim has swapped that token.
std::string with_session_token(std::string head, const TokenEntry* st) {
  if (st == nullptr || st->token.size() == 0) return head;
  const std::string_view tok = st->token.view();
  for (std::size_t p = head.find(tok); p != std::string::npos; p = head.find(tok, p + st->value.size()))
    head.replace(p, tok.size(), st->value.view());
  return head;
}

void wipe_string(std::string& s) {
  if (!s.empty()) explicit_bzero(s.data(), s.size());
}

}  // namespace

bool decide_sign(const DecideContext& ctx, const wire::Request& req, wire::Reply& rep, TokenUse& a) {
  const std::string_view data(reinterpret_cast<const char*>(req.data), req.data_len);
  const std::string_view hash = data.substr(0, wire::kSignHashLen);
  const std::string_view head_text = data.substr(wire::kSignHashLen);
  const TokenEntry* s = signing_secret(*ctx.table, sigv4::access_key_of(head_text));
  if (s == nullptr) {
    rep.decision = wire::Decision::Unknown;
    return false;
  }
  a.secret = s->name;
  a.token_id = s->token_id;
  auto refuse = [&](std::string why) {
    rep.decision = wire::Decision::Refuse;
    a.decision = "refuse";
    const std::string_view r = std::string_view(why).substr(0, wire::kMaxReason);
    rep.reason_len = static_cast<std::uint16_t>(r.size());
    std::memcpy(rep.reason, r.data(), r.size());
    a.reason = std::move(why);
    return true;
  };
  if ((req.flags & wire::kFlagUnidentified) != 0)
    return refuse("the request this signature belongs to could not be identified (its framing could not be followed)");
  if ((req.form & wire::kSignHeadTruncated) != 0)
    return refuse("the request head is longer than kz can re-sign (" + std::to_string(wire::kMaxData - wire::kSignHashLen) +
                  " bytes)");
  auto head = sigv4::parse_head(head_text);
  if (!head) return refuse("kz cannot read this SigV4 request: " + head.error().message);
  if (std::string why = head_mismatch(*head, req); !why.empty()) return refuse(std::move(why));
  auto sig = sigv4::parse_signed(*head, head_text);
  if (!sig) return refuse("kz cannot re-sign this SigV4 request: " + sig.error().message);
  if (sig->access_key != s->binding.access_key_id)
    return refuse("the credential scope names another access key than the one the secret was chosen by");
  a.service = sig->service;
  a.region = sig->region;
  if (std::string why = request_refusal(ctx, req, *s, true); !why.empty()) return refuse(std::move(why));
  if (s->expired)
    return refuse("the value of " + s->name + " expired and no refresh has succeeded since (fail closed)");
  if (std::string why = scope_refusal(s->binding, s->name, sig->service, sig->region); !why.empty())
    return refuse(std::move(why));
  const std::int64_t now = ctx.now != 0 ? ctx.now : static_cast<std::int64_t>(::time(nullptr));
  const std::int64_t when = sigv4::parse_amz_date(sig->amz_date);
  if (when < now - kSigV4MaxSkewSeconds || when > now + kSigV4MaxSkewSeconds)
    return refuse("the request's date " + sig->amz_date + " is more than 15 minutes from kz's clock");
  if (sig->presigned) {
    const std::int64_t expires = presign_expiry(head->target);
    if (expires < 0 || expires > kSigV4MaxPresignSeconds)
      return refuse("a presigned URL must say X-Amz-Expires of at most " + std::to_string(kSigV4MaxPresignSeconds) +
                    " seconds for kz to sign it: it is a credential that works from anywhere until it expires");
  }
  if (sig->content_sha256.rfind("STREAMING-AWS4-", 0) == 0)
    return refuse("a streaming upload whose chunks are signed (" + sig->content_sha256.substr(0, 48) +
                  ") is not re-signed by kz: each chunk's signature chains from the request's");
  const bool body_known = hash.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  const auto payloads = sigv4::payload_candidates(*sig, body_known ? hash : std::string_view());
  if (payloads.empty())
    return refuse("the request signs its body's hash and kz does not have the whole body (chunked, "
                  "100-continue, or larger than kz holds)");

  // The agent signed with the token as its key: the construction that reproduces that
  // signature is the one its SDK used, over exactly these bytes.
  const std::string token(s->token.view());
  const sigv4::UriStyle* style = nullptr;
  const std::string* payload = nullptr;
  for (const sigv4::UriStyle& st : sigv4::kUriStyles) {
    for (const std::string& p : payloads) {
      const std::string creq = sigv4::canonical_request(*head, *sig, st, p);
      if (sigv4::signature(token, *sig, sigv4::string_to_sign(*sig, creq)) == sig->signature) {
        style = &st;
        payload = &p;
        break;
      }
    }
    if (style != nullptr) break;
  }
  if (style == nullptr)
    return refuse("kz could not reproduce the request's signature from the bytes sent (signed with another key, "
                  "or built in a way kz does not know): sent with its own signature");

  const TokenEntry* session = s->binding.session_token.empty() ? nullptr : secret_named(*ctx.table, s->binding.session_token);
  std::string real_text = with_session_token(std::string(head_text), session);
  auto real_head = sigv4::parse_head(real_text);
  if (!real_head) {
    wipe_string(real_text);
    return refuse("kz cannot read this SigV4 request once its session token is in place");
  }
  std::string creq = sigv4::canonical_request(*real_head, *sig, *style, *payload);
  const std::string signature = sigv4::signature(s->value.view(), *sig, sigv4::string_to_sign(*sig, creq));
  wipe_string(creq);
  wipe_string(real_text);
  for (auto& h : real_head->headers) wipe_string(h.value);

  rep.decision = wire::Decision::Allow;
  rep.data_len = static_cast<std::uint32_t>(signature.size());
  std::memcpy(rep.data, signature.data(), signature.size());
  rep.token_len = static_cast<std::uint32_t>(sig->signature_pos);
  rep.secret_id = s->id;
  a.decision = "allow";
  return true;
}

}  // namespace kz
