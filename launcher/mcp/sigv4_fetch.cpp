#include "mcp/sigv4_fetch.h"

#include "kz/aws_sigv4.h"
#include "kz/wipe.h"

namespace kz::mcp {

std::string sign_header_problem(std::string_view name) {
  const std::string n = sigv4::lower(name);
  for (const char* h : {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})
    if (n == h) return "header " + std::string(name) + " is set by kz when it signs the request";
  return "";
}

std::string sign_refusal(const SigningCredentials& c, const SignScope& scope, const HopInfo& hop) {
  // The key itself is never sent: its binding's hosts, methods and paths say where kz may
  // sign with it (the broker's decide_sign does the same).
  Binding b = c.binding;
  b.sign.clear();
  if (BindingVerdict v = check_binding(b, c.secret, hop.url.host, hop.method, hop.url.target); !v) return v.reason;
  return scope_refusal(c.binding, c.secret, scope.service, scope.region);
}

std::string host_header(const HttpsUrl& url) {
  std::string h = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (url.port != 443) h += ":" + std::to_string(url.port);
  return h;
}

Status sign_hop(PreparedHop& wire, const HopInfo& hop, const SigningCredentials& c, const SignScope& scope,
                const std::string& amz_date) {
  sigv4::SigV4Request req;
  req.method = hop.method;
  const std::string& target = hop.url.target;
  const std::size_t q = target.find('?');
  req.path = target.substr(0, q);
  if (q != std::string::npos) req.query = target.substr(q + 1);
  req.headers.emplace_back("Host", host_header(hop.url));
  // What libcurl sends of the caller's headers: the engine's own are left out.
  for (const auto& [name, value] : wire.headers)
    if (!is_engine_header(name)) req.headers.emplace_back(name, value.str());
  req.body = wire.body.str();

  sigv4::SigV4Params p;
  p.access_key_id = c.access_key_id;
  p.secret_access_key = c.key.view();
  p.session_token = c.session_token.view();
  p.region = scope.region;
  p.service = scope.service;
  p.amz_date = amz_date;
  // S3 signs the path as sent, once encoded, and wants the payload's hash as a header;
  // every other service encodes the normalised path again.
  const bool s3 = scope.service == "s3";
  p.options.normalize_path = !s3;
  p.options.double_encode_path = !s3;
  p.options.add_content_sha256 = true;
  auto r = sigv4::sign_request(req, p);
  for (auto& [k, v] : req.headers) wipe(v);
  wipe(req.body);
  if (!r) return r.take_error();
  wipe(r->canonical_request.str());
  wire.headers.emplace_back("Host", ScrubbedString(host_header(hop.url)));
  for (auto& [k, v] : r->add_headers) {
    wire.headers.emplace_back(k, ScrubbedString(v));
    wipe(v);
  }
  return ok_status();
}

}  // namespace kz::mcp
