#include "kz/aws_sigv4.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace kz::sigv4 {

namespace {

constexpr const char* kAlgorithm = "AWS4-HMAC-SHA256";

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~';
}

void append_escape(std::string& out, unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  out.push_back('%');
  out.push_back(digits[c >> 4]);
  out.push_back(digits[c & 0x0f]);
}

bool excluded_header(const std::string& lname) {
  return lname == "authorization" || lname == "user-agent" || lname == "expect" ||
         lname == "x-amzn-trace-id";
}

bool has_header(const HeaderList& h, std::string_view lname) {
  for (const auto& [k, v] : h)
    if (lower(k) == lname) return true;
  return false;
}

const std::string* header_value(const HeaderList& h, std::string_view lname) {
  for (const auto& [k, v] : h)
    if (lower(k) == lname) return &v;
  return nullptr;
}

bool valid_amz_date(std::string_view d) {
  if (d.size() != 16 || d[8] != 'T' || d[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i)
    if (i != 8 && std::isdigit(static_cast<unsigned char>(d[i])) == 0) return false;
  return true;
}

std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> stack;
  size_t i = 0;
  std::string_view last;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    last = seg;
    if (seg == "..") {
      if (!stack.empty()) stack.pop_back();
    } else if (!seg.empty() && seg != ".") {
      stack.push_back(seg);
    }
    i = j + 1;
  }
  std::string out = "/";
  for (size_t k = 0; k < stack.size(); ++k) {
    if (k > 0) out += '/';
    out.append(stack[k]);
  }
  const bool trailing = last.empty() || last == "." || last == "..";
  if (!stack.empty() && trailing) out += '/';
  return out;
}

struct Prepared {
  HeaderList headers;         // request headers plus the ones added before signing
  HeaderList added;           // the ones added (to return to the caller)
  std::string amz_date;
  std::string date;
  std::string scope;
  std::string payload_hash;
};

Result<Prepared> prepare(const SigV4Request& req, const SigV4Params& p) {
  Prepared out;
  if (p.access_key_id.empty())
    return make_error(ErrorKind::Config, "SigV4: empty access key id");
  if (p.region.empty() || p.service.empty())
    return make_error(ErrorKind::Config, "SigV4: region and service are required");
  out.amz_date = p.amz_date;
  if (const std::string* d = header_value(req.headers, "x-amz-date")) out.amz_date = *d;
  if (!valid_amz_date(out.amz_date))
    return make_error(ErrorKind::Internal, "SigV4: X-Amz-Date must look like 20150830T123600Z");
  out.date = out.amz_date.substr(0, 8);
  out.scope = out.date + "/" + p.region + "/" + p.service + "/aws4_request";
  out.payload_hash = sha256_hex(req.body);
  out.headers = req.headers;
  return out;
}

Result<SigV4Result> finish(const SigV4Request& req, const SigV4Params& p, const Prepared& prep,
                           std::string_view canonical_q, const HeaderList& signed_headers) {
  SigV4Result r;
  std::string block;
  canonical_headers(signed_headers, &block, &r.signed_headers);
  std::string& creq = r.canonical_request.str();
  creq.reserve(256 + block.size());
  creq.append(req.method).append("\n");
  creq.append(canonical_uri(req.path, p.options)).append("\n");
  creq.append(canonical_q).append("\n");
  creq.append(block).append("\n");
  creq.append(r.signed_headers).append("\n");
  creq.append(prep.payload_hash);
  wipe(block);
  r.credential_scope = prep.scope;
  r.string_to_sign = string_to_sign(prep.amz_date, prep.scope, creq);
  ScrubbedString key = derive_signing_key(p.secret_access_key, prep.date, p.region, p.service);
  if (key.str().size() != 32) return make_error(ErrorKind::Internal, "SigV4: HMAC failed");
  ScrubbedString mac(hmac_sha256(key.str(), r.string_to_sign));
  r.signature = hex(mac.str());
  return r;
}

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string canonical_header_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char ch : v) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(ch);
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
                sizeof out, &len) == nullptr)
    return {};
  std::string r(reinterpret_cast<const char*>(out), len);
  wipe(out, sizeof out);
  return r;
}

std::string canonical_uri(std::string_view raw_path, const SigV4Options& opt) {
  std::string path = raw_path.empty() ? std::string("/") : std::string(raw_path);
  if (opt.normalize_path) path = remove_dot_segments(path);
  if (opt.double_encode_path) return uri_encode(path, /*keep_slash=*/true);
  // S3 style: the wire path is already encoded once; keep valid %XX escapes, encode the
  // rest of what is not unreserved.
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '%' && i + 2 < path.size() &&
        hex_value(path[i + 1]) >= 0 && hex_value(path[i + 2]) >= 0) {
      out.push_back('%');
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 1]))));
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 2]))));
      i += 2;
    } else if (is_unreserved(c) || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      append_escape(out, c);
    }
  }
  return out;
}

std::string canonical_query(std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t i = 0;
  while (i <= raw_query.size()) {
    size_t j = raw_query.find('&', i);
    if (j == std::string_view::npos) j = raw_query.size();
    std::string_view part = raw_query.substr(i, j - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string_view k = part.substr(0, eq);
      std::string_view v = eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
      params.emplace_back(uri_encode(percent_decode(k), false), uri_encode(percent_decode(v), false));
    }
    i = j + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

void canonical_headers(const HeaderList& headers, std::string* block, std::string* signed_list) {
  std::map<std::string, std::string> merged;
  for (const auto& [k, v] : headers) {
    std::string name = lower(canonical_header_value(k));
    if (excluded_header(name)) continue;
    auto [it, inserted] = merged.emplace(name, canonical_header_value(v));
    if (!inserted) {
      it->second += ',';
      it->second += canonical_header_value(v);
    }
  }
  block->clear();
  signed_list->clear();
  for (auto& [k, v] : merged) {
    block->append(k).append(":").append(v).append("\n");
    if (!signed_list->empty()) signed_list->push_back(';');
    signed_list->append(k);
    wipe(v);   // may be the session token
  }
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  std::string s = kAlgorithm;
  s.append("\n").append(amz_date).append("\n").append(scope).append("\n");
  s.append(sha256_hex(canonical_request));
  return s;
}

ScrubbedString derive_signing_key(std::string_view secret_access_key, std::string_view date,
                                  std::string_view region, std::string_view service) {
  ScrubbedString k0;
  k0.str().reserve(4 + secret_access_key.size());
  k0.str().append("AWS4").append(secret_access_key);
  ScrubbedString k_date(hmac_sha256(k0.str(), date));
  ScrubbedString k_region(hmac_sha256(k_date.str(), region));
  ScrubbedString k_service(hmac_sha256(k_region.str(), service));
  return ScrubbedString(hmac_sha256(k_service.str(), "aws4_request"));
}

std::string format_amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Result<SigV4Result> sign_request(const SigV4Request& req, const SigV4Params& p) {
  auto prep_r = prepare(req, p);
  if (!prep_r) return prep_r.take_error();
  Prepared& prep = *prep_r;
  if (!has_header(prep.headers, "x-amz-date")) prep.added.emplace_back("X-Amz-Date", prep.amz_date);
  const bool sign_token = !p.session_token.empty() && !p.options.omit_session_token;
  if (sign_token && !has_header(prep.headers, "x-amz-security-token"))
    prep.added.emplace_back("X-Amz-Security-Token", std::string(p.session_token));
  if (p.options.add_content_sha256 && !has_header(prep.headers, "x-amz-content-sha256"))
    prep.added.emplace_back("X-Amz-Content-Sha256", prep.payload_hash);
  for (const auto& h : prep.added) prep.headers.push_back(h);

  auto r = finish(req, p, prep, canonical_query(req.query), prep.headers);
  for (auto& [k, v] : prep.headers) wipe(v);
  if (!r) {
    for (auto& [k, v] : prep.added) wipe(v);
    return r;
  }
  r->authorization = std::string(kAlgorithm) + " Credential=" + p.access_key_id + "/" +
                     r->credential_scope + ", SignedHeaders=" + r->signed_headers +
                     ", Signature=" + r->signature;
  r->add_headers = std::move(prep.added);
  if (!p.session_token.empty() && p.options.omit_session_token &&
      !has_header(req.headers, "x-amz-security-token"))
    r->add_headers.emplace_back("X-Amz-Security-Token", std::string(p.session_token));
  r->add_headers.emplace_back("Authorization", r->authorization);
  return r;
}

Result<SigV4Result> presign_request(const SigV4Request& req, const SigV4Params& p,
                                    long expires_seconds) {
  auto prep_r = prepare(req, p);
  if (!prep_r) return prep_r.take_error();
  Prepared& prep = *prep_r;
  std::string block, signed_list;
  canonical_headers(prep.headers, &block, &signed_list);
  wipe(block);

  auto param = [](std::string_view k, std::string_view v) {
    return uri_encode(k, false) + "=" + uri_encode(v, false);
  };
  std::string before_token = param("X-Amz-Algorithm", kAlgorithm) + "&" +
                             param("X-Amz-Credential", p.access_key_id + "/" + prep.scope) + "&" +
                             param("X-Amz-Date", prep.amz_date) + "&" +
                             param("X-Amz-SignedHeaders", signed_list) + "&" +
                             param("X-Amz-Expires", std::to_string(expires_seconds));
  ScrubbedString token_param;
  if (!p.session_token.empty()) token_param.str() = param("X-Amz-Security-Token", p.session_token);

  ScrubbedString signed_query;
  signed_query.str() = req.query;
  if (!signed_query.str().empty()) signed_query.str() += '&';
  signed_query.str() += before_token;
  if (!token_param.str().empty() && !p.options.omit_session_token)
    signed_query.str() += "&" + token_param.str();

  ScrubbedString cq(canonical_query(signed_query.str()));
  auto r = finish(req, p, prep, cq.str(), prep.headers);
  if (!r) return r;
  std::string& q = r->presigned_query;
  q = signed_query.str();
  if (!token_param.str().empty() && p.options.omit_session_token) q += "&" + token_param.str();
  q += "&X-Amz-Signature=" + r->signature;
  return r;
}

}  // namespace kz::sigv4
