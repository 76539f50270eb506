#include "mcp/mcp_tools.h"

#include <unistd.h>

#include <ctime>

#include "config/secret_bindings.h"
#include "core/utc_time.h"
#include "mcp/fetch_engine.h"
#include "mcp/response_filter.h"
#include "mcp/sigv4_fetch.h"
#include "mcp/token_swap.h"
#include "masking/encodings.h"
#include "kz/aws_sigv4.h"
#include "kz/digest.h"
#include "policy/policy_engine.h"
#include "secrets/aws_credential_set.h"
#include "server/pdp_approval.h"
#include "secrets/canary.h"
#include "secrets/token_mint.h"
#include "kz/preload/basic_auth.h"
#include "kz/wipe.h"

namespace kz::mcp {

namespace {

using nlohmann::json;

json text_result(const std::string& text, bool is_error) {
  return {{"content", json::array({{{"type", "text"}, {"text", text}}})}, {"isError", is_error}};
}

// A successful result: the structured content, and the same as JSON text for clients
// that only read `content`.
json structured_result(json sc) {
  json r = text_result(sc.dump(-1, ' ', false, json::error_handler_t::replace), false);
  r["structuredContent"] = std::move(sc);
  return r;
}

std::string iso_time(std::int64_t t) { return utc_iso(t); }

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string path_only(const std::string& target) { return target.substr(0, target.find('?')); }

// The start of a tool call's audit record: who, over what.
McpCall call_record(const CallContext& ctx, const char* tool) {
  McpCall rec;
  rec.tool = tool;
  rec.transport = ctx.transport;
  rec.sub = ctx.identity->sub;
  if (!ctx.source.empty()) rec.source = ctx.source;
  if (!ctx.session.empty()) rec.session = ctx.session;
  return rec;
}

}  // namespace

McpTools::McpTools(TokenTable& tokens, AuditRecorder& audit, const Replicas* replicas)
    : tokens_(tokens), audit_(audit), replicas_(replicas) {}

Result<Minted> McpTools::issue(const CallContext& ctx, TokenEntry e) {
  if (replicas_ == nullptr) return tokens_.issue(std::move(e));
  TokenClaims c{e.owner, e.name, e.provider, e.ref, ctx.session, e.expires_at, e.canary};
  auto sealed = replicas_->seal->seal_token(c);
  if (!sealed) return sealed.take_error();
  // Kept here too: this replica serves it without opening it again.
  return tokens_.adopt(std::move(*sealed), std::move(e));
}

std::string McpTools::admit_sealed(const CallContext& ctx, const FetchRequest& req, std::int64_t now) {
  std::vector<std::string> texts;
  auto collect = [&](std::string_view text) {
    for (const auto& [pos, len] : find_token_texts(text)) texts.emplace_back(text.substr(pos, len));
  };
  for (const auto& [k, v] : req.headers) {
    collect(v);
    if (v.size() > 6 && (v.compare(0, 6, "Basic ") == 0 || v.compare(0, 6, "basic ") == 0)) {
      ScrubbedString decoded;
      decoded.str().resize(v.size());
      const long n = preload::b64_decode(v.data() + 6, v.size() - 6, reinterpret_cast<unsigned char*>(decoded.str().data()),
                                         decoded.str().size());
      if (n > 0) {
        decoded.str().resize(static_cast<std::size_t>(n));
        collect(decoded.str());
      }
    }
  }
  collect(req.body);
  const policy::Bundle& bundle = ctx.state->bundle;
  for (const auto& text : texts) {
    const std::string id = token_id(text);
    auto claims = replicas_->seal->open_token(text, now);
    if (!claims) return "token " + id + " " + claims.error().message;
    // Before anything is resolved for it: another identity's token is not this caller's.
    if (claims->owner != ctx.identity->key) return "token " + id + " was issued to another identity";
    if (replicas_->revoked(id) || replicas_->revoked(claims->session))
      return "token " + id + " was revoked (deny list " + replicas_->deny->path() + ")";
    if (tokens_.find(text, now)) continue;
    // Issued by another replica: its secret is resolved here, as it was there.
    const SecretSpec* spec = nullptr;
    for (const auto& s : claims->canary ? bundle.canaries : bundle.secrets)
      if (s.name == claims->name && (claims->canary || (s.provider == claims->provider && s.ref == claims->ref))) spec = &s;
    if (spec == nullptr) return "token " + id + " names " + claims->name + ", which this bundle no longer declares as it was";
    TokenEntry t;
    t.name = spec->name;
    t.provider = claims->provider;
    t.ref = claims->ref;
    t.owner = claims->owner;
    t.canary = claims->canary;
    t.expires_at = claims->expires_at;
    if (!t.canary) {
      t.binding = binding_of(*spec, /*allow_any_host=*/false);
      auto value = resolve_with_providers(ctx.state->providers, spec->provider, spec->ref);
      if (!value) return value.error().message;
      t.value = std::move(*value);
    }
    if (auto adopted = tokens_.adopt(text, std::move(t)); !adopted) return adopted.error().message;
  }
  return "";
}

Result<SigningCredentials> McpTools::signing_credentials(const CallContext& ctx, const std::string& name,
                                                         const std::function<std::string(const SigningCredentials&)>& policy) {
  const policy::Bundle& bundle = ctx.state->bundle;
  auto find = [&](const std::string& n) -> const SecretSpec* {
    for (const auto& s : bundle.secrets)
      if (s.name == n) return &s;
    return nullptr;
  };
  for (const auto& c : bundle.canaries)
    if (c.name == name) {
      CanarySeen seen;
      seen.secret = c.name;
      seen.reason = "an MCP fetch asked to sign with canary " + c.name + ", a decoy that nothing legitimate uses";
      canary_seen(ctx, std::move(seen));
      return make_error(ErrorKind::Denied, "canary " + c.name + ": a decoy bound to no host");
    }
  const SecretSpec* spec = find(name);
  if (spec == nullptr) return make_error(ErrorKind::Denied, "no secret named " + name + " is declared in " + bundle.path);
  if (spec->sign != "sigv4")
    return make_error(ErrorKind::Denied, name + " is not a signing key (sign = \"sigv4\" in " + bundle.path + ")");
  SigningCredentials c;
  c.secret = spec->name;
  c.provider = spec->provider;
  c.ref = spec->ref;
  c.binding = binding_of(*spec, /*allow_any_host=*/false);
  if (std::string why = policy(c); !why.empty()) return make_error(ErrorKind::Denied, why);
  auto value = resolve_with_providers(ctx.state->providers, spec->provider, spec->ref);
  if (!value) return value.take_error();
  if (spec->format.empty()) {
    c.access_key_id = spec->access_key_id;
    c.key = std::move(*value);
    if (const SecretSpec* t = spec->session_token.empty() ? nullptr : find(spec->session_token)) {
      auto token = resolve_with_providers(ctx.state->providers, t->provider, t->ref);
      if (!token) return token.take_error();
      c.session_token = std::move(*token);
    }
    return c;
  }
  // A credential set: the id, the key and the token from one resolution.
  auto set = split_aws_credentials(value->view());
  if (!set) return make_error(set.error().kind, name + ": " + set.error().message);
  if (!spec->access_key_id.empty() && spec->access_key_id != set->access_key_id)
    return make_error(ErrorKind::Config, name + ": the credential set's access key id is not the access_key_id written for it");
  c.access_key_id = std::move(set->access_key_id);
  c.key = std::move(set->secret_access_key);
  c.session_token = std::move(set->session_token);
  return c;
}

void McpTools::canary_seen(const CallContext& ctx, CanarySeen seen) {
  seen.where = "mcp";
  seen.decision = revoke_on_canary_ ? "kill" : "audit";
  if (revoke_on_canary_) {
    seen.reason += "; identity " + ctx.identity->sub + " is revoked: its every later call and token is refused "
                   "(on_canary = \"kill\")";
    std::lock_guard lock(revoked_mu_);
    revoked_.insert(ctx.identity->key);
  }
  seen.sub = ctx.identity->sub;
  if (!ctx.source.empty()) seen.source = ctx.source;
  if (!ctx.session.empty()) seen.session = ctx.session;
  audit_.record(std::move(seen));
}

bool McpTools::revoked(const CallContext& ctx) const {
  std::lock_guard lock(revoked_mu_);
  return !revoked_.empty() && revoked_.count(ctx.identity->key) > 0;
}

Result<json> McpTools::call(const CallContext& ctx, std::string_view name, const json& args) {
  if ((name == "resolve" || name == "fetch") && revoked(ctx)) {
    McpCall rec = call_record(ctx, name == "resolve" ? "resolve" : "fetch");
    rec.decision = "deny";
    rec.reason = "identity " + ctx.identity->sub + " was revoked: it used a canary (on_canary = \"kill\")";
    audit_.record(rec);
    return text_result(*rec.reason, true);
  }
  if (name == "resolve") return resolve(ctx, args);
  if (name == "fetch") return fetch(ctx, args);
  return make_error(ErrorKind::NotFound, "unknown tool: " + std::string(name));
}

Result<json> McpTools::resolve(const CallContext& ctx, const json& args) {
  std::string name, ref;
  for (const auto& [k, v] : args.items()) {
    if (k != "name" && k != "ref") return make_error(ErrorKind::Usage, "unknown argument \"" + k + "\" (resolve takes name or ref)");
    if (!v.is_string() || v.get<std::string>().empty()) return make_error(ErrorKind::Usage, k + " must be a non-empty string");
    (k == "name" ? name : ref) = v.get<std::string>();
  }
  if (name.empty() == ref.empty()) return make_error(ErrorKind::Usage, "give exactly one of name and ref");

  const policy::Bundle& bundle = ctx.state->bundle;
  McpCall rec = call_record(ctx, "resolve");
  auto refuse = [&](const char* decision, const std::string& reason) {
    rec.decision = decision;
    rec.reason = reason;
    audit_.record(rec);
    return text_result(reason, true);
  };

  const SecretSpec* spec = nullptr;
  std::string matches;
  for (const auto& s : bundle.secrets) {
    if (!name.empty() ? s.name == name : s.ref == ref) {
      if (spec == nullptr) spec = &s;
      matches += (matches.empty() ? "" : ", ") + s.name;
    }
  }
  if (spec == nullptr && !name.empty())
    for (const auto& c : bundle.canaries)
      if (c.name == name) return resolve_canary(ctx, c, rec);
  if (spec == nullptr) {
    (name.empty() ? rec.ref : rec.secret) = name.empty() ? ref : name;
    return refuse("error", (name.empty() ? "no secret with ref " + ref : "no secret named " + name) + " is declared in " +
                               bundle.path + " (secrets:)");
  }
  if (name.empty() && matches != spec->name)
    return refuse("error", "several secrets have ref " + ref + " (" + matches + "): resolve one by name");
  rec.secret = spec->name;
  rec.provider = spec->provider;
  rec.ref = spec->ref;

  const Binding b = binding_of(*spec, /*allow_any_host=*/false);
  const std::int64_t now = unix_now();
  bool reveal = false;
  if (ctx.enforce_policy) {
    policy::RequestInput req;
    req.time = now;
    req.source = ctx.source;
    const auto d = policy::decide(bundle, ctx.identity->value, {spec->name, spec->provider, spec->ref}, req);
    rec.policy = d.policy_id;
    rec.rule = d.rule_id;
    rec.revision = bundle.revision;
    if (d.approve) {   // effect: approve: the call waits for a person (server/pdp_approval.h)
      const PdpApprovalResult ar = ask_pdp_approval(
          bundle.approvals, {ctx.identity->sub, spec->name, spec->provider, spec->ref, "", "", "", ctx.source, "",
                             issuer_of(ctx.identity->claims), "", ""}, audit_);
      if (!ar.approved())
        return refuse("deny", "not approved (" + std::string(verdict_name(ar.verdict)) + ", " + ar.by + "): " + d.reason);
    } else if (!d.allow) {
      return refuse("deny", "denied by policy: " + d.reason);
    }
    reveal = d.reveal;
  }
  if (b.hosts.empty() && !reveal)
    return refuse("error", spec->name + " has no hosts it may be sent to, so a token for it could not be used: add hosts: [...] to it in " +
                               bundle.path);

  auto value = resolve_with_providers(ctx.state->providers, spec->provider, spec->ref);
  if (!value) return refuse("error", value.error().message);

  TokenEntry t;
  t.name = spec->name;
  t.provider = spec->provider;
  t.ref = spec->ref;
  t.owner = ctx.identity->key;
  t.binding = b;
  t.expires_at = now + bundle.mcp.token_ttl.count();
  t.value = std::move(*value);
  auto minted = issue(ctx, std::move(t));
  if (!minted) return refuse("error", minted.error().message);

  json sc = {{"name", spec->name},
             {"token", minted->token},
             {"hosts", b.hosts},
             {"methods", b.methods},
             {"paths", b.paths},
             {"expires_at", iso_time(minted->entry->expires_at)},
             {"expires_in", bundle.mcp.token_ttl.count()}};
  if (reveal) sc["value"] = std::string(minted->entry->value.view());
  rec.decision = "allow";
  rec.token_id = minted->entry->token_id;
  rec.revealed = reveal;
  audit_.record(rec);
  json r = structured_result(std::move(sc));
  if (!reveal)
    r["content"][0]["text"] = "Token for " + spec->name + ": " + minted->token + " (usable for " + joined(b.hosts) +
                              " until " + iso_time(minted->entry->expires_at) + "). " + r["content"][0]["text"].get<std::string>();
  return r;
}

// A canary resolves like any secret (no policy asked: there is nothing to protect, and a
// refusal would tell it apart); its token is its shape's prefix and a kz token that
// stands for no value and is bound nowhere, so fetch refuses it and raises the alarm.
Result<json> McpTools::resolve_canary(const CallContext& ctx, const SecretSpec& c, McpCall& rec) {
  const std::int64_t now = unix_now();
  const policy::Bundle& bundle = ctx.state->bundle;
  TokenEntry t;
  t.name = c.name;
  t.provider = "canary";
  t.canary = true;
  t.owner = ctx.identity->key;
  t.expires_at = now + bundle.mcp.token_ttl.count();
  auto minted = issue(ctx, std::move(t));
  if (!minted) {
    rec.secret = c.name;
    rec.decision = "error";
    rec.reason = minted.error().message;
    audit_.record(rec);
    return text_result(minted.error().message, true);
  }
  const SecretValue shown = canary_with_token(canary_shape_for(c.name, c.shape), minted->token);
  const std::string token(shown.view());
  rec.secret = c.name;
  rec.provider = "canary";
  rec.decision = "allow";
  rec.token_id = minted->entry->token_id;
  rec.revealed = false;
  audit_.record(rec);
  json r = structured_result({{"name", c.name},
                              {"token", token},
                              {"hosts", json::array()},
                              {"methods", json::array()},
                              {"paths", json::array()},
                              {"expires_at", iso_time(minted->entry->expires_at)},
                              {"expires_in", bundle.mcp.token_ttl.count()}});
  r["content"][0]["text"] = "Token for " + c.name + ": " + token + " (until " + iso_time(minted->entry->expires_at) +
                            "). " + r["content"][0]["text"].get<std::string>();
  return r;
}

Result<json> McpTools::fetch(const CallContext& ctx, const json& args) {
  FetchRequest fr;
  std::string sign_secret;
  SignScope scope;
  const McpConfig& mc = ctx.state->bundle.mcp;
  std::chrono::milliseconds timeout = mc.fetch.timeout;
  for (const auto& [k, v] : args.items()) {
    if (k == "url" || k == "method" || k == "body") {
      if (!v.is_string()) return make_error(ErrorKind::Usage, k + " must be a string");
      (k == "url" ? fr.url : k == "method" ? fr.method : fr.body) = v.get<std::string>();
    } else if (k == "headers") {
      if (!v.is_object()) return make_error(ErrorKind::Usage, "headers must be an object of header names to string values");
      for (const auto& [hn, hv] : v.items()) {
        if (!hv.is_string()) return make_error(ErrorKind::Usage, "headers." + hn + " must be a string");
        if (auto why = header_problem(hn, hv.get<std::string>()); !why.empty()) return make_error(ErrorKind::Usage, why);
        fr.headers.emplace_back(hn, hv.get<std::string>());
      }
    } else if (k == "sign") {
      if (!v.is_object()) return make_error(ErrorKind::Usage, "sign must be an object {secret, service, region}");
      for (const auto& [sk, sv] : v.items()) {
        if (sk != "secret" && sk != "service" && sk != "region")
          return make_error(ErrorKind::Usage, "unknown argument \"sign." + sk + "\" (sign takes secret, service, region)");
        if (!sv.is_string() || sv.get<std::string>().empty())
          return make_error(ErrorKind::Usage, "sign." + sk + " must be a non-empty string");
      }
      for (const char* need : {"secret", "service", "region"})
        if (!v.contains(need)) return make_error(ErrorKind::Usage, std::string("sign.") + need + " is required");
      sign_secret = v["secret"].get<std::string>();
      scope.service = v["service"].get<std::string>();
      scope.region = v["region"].get<std::string>();
      for (const std::string& part : {scope.service, scope.region})
        if (part.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
          return make_error(ErrorKind::Usage, "sign.service and sign.region are lower-case AWS names like s3 and us-east-1");
    } else if (k == "timeout_ms") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 1) return make_error(ErrorKind::Usage, "timeout_ms must be a positive integer");
      timeout = std::min(timeout, std::chrono::milliseconds(v.get<std::int64_t>()));
    } else {
      return make_error(ErrorKind::Usage, "unknown argument \"" + k + "\" (fetch takes url, method, headers, body, sign, timeout_ms)");
    }
  }
  if (fr.url.empty()) return make_error(ErrorKind::Usage, "url is required");
  if (!sign_secret.empty())
    for (const auto& [hn, hv] : fr.headers)
      if (auto why = sign_header_problem(hn); !why.empty()) return make_error(ErrorKind::Usage, why);
  static const char* const kMethods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  if (std::find(std::begin(kMethods), std::end(kMethods), fr.method) == std::end(kMethods))
    return make_error(ErrorKind::Usage, "method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");

  McpCall rec = call_record(ctx, "fetch");
  rec.method = fr.method;
  std::vector<std::shared_ptr<const TokenEntry>> used;
  std::optional<SigningCredentials> signer;
  auto note_used = [&] {
    std::vector<std::string> names, ids;
    for (const auto& u : used) {
      names.push_back(u->name);
      ids.push_back(u->token_id);
    }
    if (signer) names.push_back(signer->secret);
    rec.secrets = std::move(names);
    rec.token_ids = std::move(ids);
  };
  auto refuse = [&](const char* decision, const std::string& reason) {
    note_used();
    rec.decision = decision;
    rec.reason = reason;
    audit_.record(rec);
    return text_result("fetch refused: " + reason, true);
  };

  auto url = parse_https_url(fr.url);
  if (!url) return refuse("deny", url.error().message);
  rec.host = url->host;
  rec.path = path_only(url->target);
  if (!find_token_texts(fr.url).empty())
    return refuse("deny", "tokens are swapped in headers and the body only, never in the URL (it is logged by servers and proxies)");

  const std::int64_t now = unix_now();
  if (replicas_ != nullptr)
    if (std::string why = admit_sealed(ctx, fr, now); !why.empty()) return refuse("deny", why);
  // Policy on the signing key, for this request (before its value is fetched) and again
  // for every hop.
  auto sign_policy = [&](const SigningCredentials& c, const std::string& host, const std::string& method,
                         const std::string& target) -> std::string {
    if (!ctx.enforce_policy) return "";
    policy::RequestInput req;
    req.time = now;
    req.source = ctx.source;
    req.host = host;
    req.method = method;
    req.path = path_only(target);
    const auto d = policy::decide(ctx.state->bundle, ctx.identity->value, {c.secret, c.provider, c.ref}, req);
    return d.allow ? "" : "policy denies " + c.secret + " for " + host + ": " + d.reason;
  };
  if (!sign_secret.empty()) {
    auto c = signing_credentials(ctx, sign_secret, [&](const SigningCredentials& k) {
      return sign_policy(k, url->host, fr.method, url->target);
    });
    if (!c) return refuse(c.error().kind == ErrorKind::Denied ? "deny" : "error", c.error().message);
    signer.emplace(std::move(*c));
  }
  // One "sign" record per hop kz signs or refuses to sign.
  auto sign_record = [&](const HopInfo& hop, const std::string& why) {
    TokenUse u;
    u.op = UseOp::Sign;
    u.decision = why.empty() ? "allow" : "refuse";
    u.pid = static_cast<long>(::getpid());
    u.exe = "kz (MCP fetch for " + ctx.identity->sub + ")";
    u.host = hop.url.host;
    u.channel = "mcp";
    u.via = "mcp";
    u.method = hop.method;
    u.path = path_only(hop.url.target);
    u.http_host = host_header(hop.url);
    u.secret = signer->secret;
    u.service = scope.service;
    u.region = scope.region;
    if (!why.empty()) u.reason = why;
    audit_.record(std::move(u));
  };
  auto sign = [&](const HopInfo& hop, Result<PreparedHop> wire) -> Result<PreparedHop> {
    if (!wire || !signer) return wire;
    std::string why = sign_refusal(*signer, scope, hop);
    if (why.empty()) why = sign_policy(*signer, hop.url.host, hop.method, hop.url.target);
    if (why.empty())
      if (auto st = sign_hop(*wire, hop, *signer, scope, sigv4::format_amz_date(std::chrono::system_clock::now())); !st)
        why = "kz could not sign the request: " + st.error().message;
    sign_record(hop, why);
    if (!why.empty()) return make_error(ErrorKind::Denied, why);
    return wire;
  };
  const FetchRequest* hop_request = nullptr;   // the request of the hop being checked
  const TokenCheck check = [&](const TokenEntry& t, const HopInfo& hop) -> Status {
    if (t.canary) {
      CanarySeen seen;
      seen.secret = t.name;
      seen.reason = "an MCP fetch carried canary " + t.name + ", a decoy that nothing legitimate uses";
      seen.token_id = t.token_id;
      seen.host = hop.url.host;
      seen.method = hop.method;
      seen.path = path_only(hop.url.target);
      canary_seen(ctx, std::move(seen));
      return make_error(ErrorKind::Denied, "canary " + t.name + ": a decoy bound to no host");
    }
    if (t.owner != ctx.identity->key)
      return make_error(ErrorKind::Denied, "the token for " + t.name + " was issued to another identity");
    if (BindingVerdict v = check_binding(t.binding, t.name, hop.url.host, hop.method, hop.url.target); !v)
      return make_error(ErrorKind::Denied, std::move(v.reason));
    if (ctx.enforce_policy) {
      policy::RequestInput req;
      req.time = now;
      req.source = ctx.source;
      req.host = hop.url.host;
      req.method = hop.method;
      req.path = path_only(hop.url.target);
      const auto d = policy::decide(ctx.state->bundle, ctx.identity->value, {t.name, t.provider, t.ref}, req);
      if (d.approve) {   // effect: approve: this request waits for a person (server/pdp_approval.h)
        // The approval covers the whole request: its query, its body (as the agent sent
        // it, tokens and all) and, with no decision id, a fresh id per ask.
        PdpApprovalFacts f{ctx.identity->sub, t.name, t.provider, t.ref, req.host, req.method, req.path, ctx.source, "",
                           issuer_of(ctx.identity->claims), hop.url.target,
                           sha256_hex(hop_request != nullptr ? std::string_view(hop_request->body) : std::string_view())};
        const PdpApprovalResult ar = ask_pdp_approval(ctx.state->bundle.approvals, f, audit_);
        if (!ar.approved())
          return make_error(ErrorKind::Denied, t.name + " for " + hop.url.host + " was not approved (" +
                                                   verdict_name(ar.verdict) + ", " + ar.by + "): " + d.reason);
      } else if (!d.allow) {
        return make_error(ErrorKind::Denied, "policy denies " + t.name + " for " + hop.url.host + ": " + d.reason);
      }
    }
    return ok_status();
  };
  const PrepareHop swap_hop = [&](const HopInfo& hop, const FetchRequest& r) -> Result<PreparedHop> {
    hop_request = &r;
    if (hop.hop == 0) return swap_tokens(r, hop, tokens_, now, check, used);
    // A redirect: followed only where every credential already sent may go.
    for (const auto& u : used)
      if (BindingVerdict v = check_host_binding(u->binding, u->name, hop.url.host); !v)
        return make_error(ErrorKind::Denied, "redirect to " + hop.url.host + " refused: " + v.reason +
                                                 ", and it was sent on this request");
    if (!hop.host_changed) return swap_tokens(r, hop, tokens_, now, check, used);
    // Another host: credentials are not carried over.
    if (!find_token_texts(r.body).empty())
      return make_error(ErrorKind::Denied, "redirect to " + hop.url.host + " refused: it would resend a credential in the body to another host");
    FetchRequest stripped = r;
    std::erase_if(stripped.headers, [](const auto& h) {
      if (!find_token_texts(h.second).empty()) return true;
      const std::string& v = h.second;
      return v.size() > 6 && (v.compare(0, 6, "Basic ") == 0 || v.compare(0, 6, "basic ") == 0);
    });
    return swap_tokens(stripped, hop, tokens_, now, check, used);
  };
  const PrepareHop prepare = [&](const HopInfo& hop, const FetchRequest& r) { return sign(hop, swap_hop(hop, r)); };

  FetchOptions fo;
  fo.addresses.allow_loopback = mc.fetch.allow_loopback;
  fo.addresses.allow_link_local = mc.fetch.allow_link_local;
  fo.addresses.allow_metadata = mc.fetch.allow_metadata;
  fo.ca_file = mc.fetch.ca_file;
  fo.timeout = timeout;
  fo.max_body = mc.fetch.max_body;
  fo.max_redirects = mc.fetch.max_redirects;
  auto resp = mcp::fetch(fr, fo, prepare);
  if (!resp) return refuse(resp.error().kind == ErrorKind::Denied || resp.error().kind == ErrorKind::Usage ? "deny" : "error",
                           resp.error().message);

  // Everything the identity holds a token for is redacted, not only what this call sent:
  // a server may echo a credential it received earlier.
  // The tokens this call used come first: an identity may hold several tokens for one
  // value, and the agent should see back the one it sent.
  std::vector<std::shared_ptr<const TokenEntry>> held = used;
  for (auto& t : tokens_.owned_by(ctx.identity->key, now))
    if (!t->canary && std::find(held.begin(), held.end(), t) == held.end()) held.push_back(std::move(t));
  if (signer) {
    // The key and session token kz signed with: never shown, even if a server echoes them.
    for (const SecretValue* v : {&signer->key, &signer->session_token}) {
      if (v->empty()) continue;
      auto e = std::make_shared<TokenEntry>();
      e->name = signer->secret;
      e->value = SecretValue::from(v->view());
      e->token = SecretValue::from("<" + signer->secret + (v == &signer->key ? "" : " session token") + ": kz signs with it>");
      held.push_back(std::move(e));
    }
  }
  std::string& body = resp->body.str();
  std::size_t redacted = redact_values(body, held, resp->truncated);
  for (auto& [k, v] : resp->headers) redacted += redact_values(v, held, false);
  const bool text = is_text(body);
  json sc = {{"status", resp->status},
             {"headers", safe_headers(resp->headers)},
             {"body", text ? body : base64_encode(body, false, true)},
             {"body_encoding", text ? "text" : "base64"},
             {"truncated", resp->truncated},
             {"final_url", resp->final_url},
             {"redirects", resp->redirects}};
  if (redacted > 0) sc["redacted"] = redacted;
  note_used();
  rec.decision = "allow";
  rec.status = resp->status;
  rec.redirects = resp->redirects;
  rec.redacted = redacted;
  if (resp->redirects > 0) {
    auto fin = parse_https_url(resp->final_url);
    if (fin) rec.final_host = fin->host;
  }
  audit_.record(rec);
  return structured_result(std::move(sc));
}

}  // namespace kz::mcp
