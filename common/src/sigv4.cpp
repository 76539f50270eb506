#include "kz/sigv4.h"

#include <string.h>
#include <time.h>

#include <algorithm>
#include <utility>

#include "kz/aws_sigv4.h"
#include "kz/digest.h"

namespace kz::sigv4 {

namespace {

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool is_ws(char c) { return c == ' ' || c == '\t'; }

bool is_lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string_view path_of(std::string_view target) {
  // An absolute-form target: its path starts after the authority.
  for (std::string_view scheme : {"https://", "http://"}) {
    if (target.size() >= scheme.size() && ieq(target.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = target.find_first_of("/?", scheme.size());
      target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
      break;
    }
  }
  const std::size_t q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string_view query_of(std::string_view target) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  const std::size_t h = rest.find('#');
  return h == std::string_view::npos ? rest : rest.substr(0, h);
}

std::string_view after_prefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix ? s.substr(prefix.size()) : std::string_view();
}

// The credential "AKID/yyyymmdd/region/service/aws4_request".
bool parse_credential(std::string_view c, Signed* s) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (true) {
    const std::size_t j = c.find('/', i);
    parts.push_back(c.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  if (parts.size() != 5 || parts[4] != "aws4_request") return false;
  for (std::size_t k = 0; k < 4; ++k)
    if (parts[k].empty()) return false;
  s->access_key = parts[0];
  s->date = parts[1];
  s->region = parts[2];
  s->service = parts[3];
  return true;
}

std::vector<std::string> split_signed_headers(std::string_view v) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= v.size()) {
    const std::size_t j = std::min(v.find(';', i), v.size());
    out.push_back(lower(v.substr(i, j - i)));
    i = j + 1;
  }
  return out;
}

std::size_t count_of(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

std::vector<std::string_view> Head::values(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const Header& h : headers)
    if (ieq(h.name, name)) out.push_back(h.value);
  return out;
}

Result<Head> parse_head(std::string_view text) {
  Head h;
  std::size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    const std::size_t next = nl == std::string_view::npos ? text.size() : nl + 1;
    std::string_view line = text.substr(pos, (nl == std::string_view::npos ? text.size() : nl) - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = next;
    if (first) {
      first = false;
      const std::size_t a = line.find(' ');
      const std::size_t b = line.rfind(' ');
      if (a == std::string_view::npos || b == a || line.substr(b + 1, 5) != "HTTP/")
        return make_error(ErrorKind::Protocol, "the request line is not METHOD SP target SP HTTP/x.y");
      h.method = line.substr(0, a);
      h.target = line.substr(a + 1, b - a - 1);
      continue;
    }
    if (line.empty()) break;
    if (is_ws(line.front())) {   // an obsolete folded continuation of the last header
      if (h.headers.empty()) return make_error(ErrorKind::Protocol, "a continuation line before any header");
      h.headers.back().value += ' ';
      h.headers.back().value += trim_blanks(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error(ErrorKind::Protocol, "a header line without a name");
    h.headers.push_back(Header{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
  }
  if (first) return make_error(ErrorKind::Protocol, "no request line");
  h.end = pos;
  return h;
}

Result<Signed> parse_signed(const Head& h, std::string_view head_text) {
  Signed s;
  auto fail = [](std::string why) { return make_error(ErrorKind::Protocol, std::move(why)); };
  std::vector<std::string_view> auths;
  for (std::string_view v : h.values("authorization")) {
    v = trim_blanks(v);
    if (v.substr(0, kAlgorithm.size()) == kAlgorithm) auths.push_back(v);
  }
  // The query's X-Amz-* parameters, decoded.
  std::string q_algorithm, q_credential, q_date, q_signed, q_signature;
  std::size_t q_signatures = 0;
  {
    const std::string_view q = query_of(h.target);
    std::size_t i = 0;
    while (i < q.size()) {
      const std::size_t j = std::min(q.find('&', i), q.size());
      const std::string_view kv = q.substr(i, j - i);
      const std::size_t eq = kv.find('=');
      const std::string name = percent_decode(kv.substr(0, eq));
      const std::string value = eq == std::string_view::npos ? std::string() : percent_decode(kv.substr(eq + 1));
      if (name == "X-Amz-Algorithm") q_algorithm = value;
      else if (name == "X-Amz-Credential") q_credential = value;
      else if (name == "X-Amz-Date") q_date = value;
      else if (name == "X-Amz-SignedHeaders") q_signed = value;
      else if (name == "X-Amz-Signature") { q_signature = value; ++q_signatures; }
      i = j + 1;
    }
  }
  if (auths.size() > 1) return fail("more than one AWS4-HMAC-SHA256 Authorization header");
  if (!auths.empty() && q_signatures > 0)
    return fail("both an Authorization header and an X-Amz-Signature query parameter");
  std::string_view credential, signed_list, sig;
  if (!auths.empty()) {
    std::string_view rest = auths[0].substr(kAlgorithm.size());
    if (rest.empty() || !is_ws(rest.front())) return fail("the Authorization header is not AWS4-HMAC-SHA256");
    std::size_t i = 0;
    while (i < rest.size()) {
      const std::size_t j = std::min(rest.find(',', i), rest.size());
      const std::string_view part = trim_blanks(rest.substr(i, j - i));
      if (!after_prefix(part, "Credential=").empty()) credential = after_prefix(part, "Credential=");
      else if (!after_prefix(part, "SignedHeaders=").empty()) signed_list = after_prefix(part, "SignedHeaders=");
      else if (!after_prefix(part, "Signature=").empty()) sig = after_prefix(part, "Signature=");
      else if (!part.empty()) return fail("an unknown part in the Authorization header");
      i = j + 1;
    }
    const auto dates = h.values("x-amz-date");
    if (dates.size() != 1) return fail("the request has no single x-amz-date header");
    s.amz_date = trim_blanks(dates[0]);
  } else if (q_signatures == 1 && q_algorithm == kAlgorithm) {
    s.presigned = true;
    credential = q_credential;
    signed_list = q_signed;
    sig = q_signature;
    s.amz_date = q_date;
  } else {
    return fail("no AWS4-HMAC-SHA256 signature (Authorization header or presigned query)");
  }
  if (!parse_credential(credential, &s)) return fail("a malformed Credential (AKID/date/region/service/aws4_request)");
  if (signed_list.empty()) return fail("no SignedHeaders");
  s.signed_headers = split_signed_headers(signed_list);
  if (!is_lower_hex64(sig)) return fail("the signature is not 64 lower-case hex digits");
  s.signature = sig;
  if (s.amz_date.size() != 16 || s.amz_date.substr(0, 8) != s.date || parse_amz_date(s.amz_date) < 0)
    return fail("the request's date does not match its credential scope");
  bool has_host = false;
  for (const std::string& name : s.signed_headers) {
    if (name.empty()) return fail("an empty name in SignedHeaders");
    if (name == "host") has_host = true;
    if (h.values(name).empty()) return fail("the signed header " + name + " is not in the request");
  }
  if (!has_host) return fail("the host header is not signed");
  const auto sha = h.values("x-amz-content-sha256");
  if (sha.size() > 1) return fail("more than one x-amz-content-sha256 header");
  if (sha.size() == 1) s.content_sha256 = trim_blanks(sha[0]);
  // The signature's place in the text, where kz writes the real one: it must occur
  // exactly once, so that there is no doubt which bytes are replaced.
  if (count_of(head_text, s.signature) != 1) return fail("the signature's digits occur more than once in the request head");
  s.signature_pos = head_text.find(s.signature);
  return s;
}

std::string canonical_headers(const Head& h, const std::vector<std::string>& signed_headers) {
  std::string out;
  for (const std::string& name : signed_headers) {
    out += name;
    out += ':';
    bool first = true;
    for (std::string_view v : h.values(name)) {
      if (!first) out += ',';
      first = false;
      out += canonical_header_value(v);
    }
    out += '\n';
  }
  out += '\n';
  for (std::size_t i = 0; i < signed_headers.size(); ++i) {
    if (i > 0) out += ';';
    out += signed_headers[i];
  }
  return out;
}

std::string canonical_uri(std::string_view target, UriStyle style) {
  SigV4Options o;
  o.normalize_path = style == UriStyle::EncodeOnceNormalized || style == UriStyle::EncodeTwiceNormalized;
  o.double_encode_path = style == UriStyle::EncodeTwice || style == UriStyle::EncodeTwiceNormalized;
  const std::string_view path = path_of(target);
  return canonical_uri(path.empty() ? std::string_view("/") : path, o);
}

std::string signed_query(std::string_view target) {
  // A presigned URL cannot sign its own signature.
  std::string out;
  const std::string_view q = query_of(target);
  std::size_t i = 0;
  while (i < q.size()) {
    const std::size_t j = std::min(q.find('&', i), q.size());
    const std::string_view kv = q.substr(i, j - i);
    if (percent_decode(kv.substr(0, kv.find('='))) != "X-Amz-Signature") {
      if (!out.empty()) out += '&';
      out += kv;
    }
    i = j + 1;
  }
  return out;
}

std::string canonical_request(const Head& h, const Signed& s, UriStyle style, std::string_view payload_hash) {
  std::string out = h.method;
  out += '\n';
  out += canonical_uri(h.target, style);
  out += '\n';
  out += canonical_query(signed_query(h.target));
  out += '\n';
  out += canonical_headers(h, s.signed_headers);
  out += '\n';
  out += payload_hash;
  return out;
}

std::string string_to_sign(const Signed& s, std::string_view creq) {
  return string_to_sign(s.amz_date, s.scope(), creq);
}

std::string signature(std::string_view secret_key, const Signed& s, std::string_view sts) {
  const ScrubbedString key = derive_signing_key(secret_key, s.date, s.region, s.service);
  return hex_lower(hmac_sha256(key.str(), sts));
}

std::vector<std::string> payload_candidates(const Signed& s, std::string_view body_hash) {
  if (!s.content_sha256.empty()) return {s.content_sha256};
  std::vector<std::string> out;
  if (!body_hash.empty()) out.emplace_back(body_hash);
  if (s.presigned) out.emplace_back(kUnsignedPayload);
  return out;
}

std::string access_key_of(std::string_view head) {
  const std::size_t p = head.find("Credential=");
  if (p == std::string_view::npos) return {};
  std::string out;
  for (std::size_t i = p + 11; i < head.size() && out.size() < 128; ++i) {
    const char c = head[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) break;
    out += c;
  }
  return out;
}

std::int64_t parse_amz_date(std::string_view d) {
  if (d.size() != 16 || d[8] != 'T' || d[15] != 'Z') return -1;
  for (std::size_t i = 0; i < 15; ++i)
    if (i != 8 && (d[i] < '0' || d[i] > '9')) return -1;
  auto num = [&](std::size_t p, std::size_t n) {
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v * 10 + (d[p + i] - '0');
    return v;
  };
  struct tm t{};
  t.tm_year = num(0, 4) - 1900;
  t.tm_mon = num(4, 2) - 1;
  t.tm_mday = num(6, 2);
  t.tm_hour = num(9, 2);
  t.tm_min = num(11, 2);
  t.tm_sec = num(13, 2);
  if (t.tm_mon < 0 || t.tm_mon > 11 || t.tm_mday < 1 || t.tm_mday > 31 || t.tm_hour > 23 || t.tm_min > 59 ||
      t.tm_sec > 60)
    return -1;
  return static_cast<std::int64_t>(timegm(&t));
}

}  // namespace kz::sigv4
