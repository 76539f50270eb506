#include "mcp/fetch_engine.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "kz/providers/curl_api.h"

namespace kz::mcp {

namespace {

using Clock = std::chrono::steady_clock;

struct CurlDeleter { void operator()(CURL* c) const { curl_api().easy_cleanup(c); } };
struct SlistDeleter { void operator()(curl_slist* l) const { curl_api().slist_free_all(l); } };
struct UrlDeleter { void operator()(CURLU* u) const { curl_api().url_cleanup(u); } };
struct CurlFree { void operator()(char* p) const { curl_api().free(p); } };
using CurlString = std::unique_ptr<char, CurlFree>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}


// One part of a parsed URL; "" when the part is absent.
std::string url_part(CURLU* u, CURLUPart part, unsigned flags, CURLUcode* rc_out = nullptr) {
  char* out = nullptr;
  CURLUcode rc = curl_api().url_get(u, part, &out, flags);
  if (rc_out != nullptr) *rc_out = rc;
  CurlString owned(out);
  return (rc == CURLUE_OK && out != nullptr) ? std::string(out) : std::string();
}

struct ParsedUrl {
  std::string scheme;   // lower case
  HttpsUrl url;
};

// Any absolute URL with a host and no user:password; the caller checks the scheme.
Result<ParsedUrl> parse_absolute(std::string_view text) {
  const CurlApi& api = curl_api();
  if (!api.ok) return make_error(ErrorKind::Internal, "cannot load libcurl.so.4 (install libcurl4)");
  if (text.find('\0') != std::string_view::npos)
    return make_error(ErrorKind::Usage, "the URL contains a NUL byte");
  std::unique_ptr<CURLU, UrlDeleter> u(api.url());
  if (!u) return make_error(ErrorKind::Internal, "cannot initialise libcurl's URL parser");
  const std::string s(text);
  // NON_SUPPORT_SCHEME: parse ftp:// and friends too, so the error can say "only https".
  CURLUcode rc = api.url_set(u.get(), CURLUPART_URL, s.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    // The URL itself stays out of the message: the agent's URL may hold tokens.
    return make_error(ErrorKind::Usage, "not a valid absolute URL (libcurl URL error " +
                                            std::to_string(static_cast<int>(rc)) + ")");
  }
  ParsedUrl p;
  p.scheme = lower(url_part(u.get(), CURLUPART_SCHEME, 0));
  CURLUcode user_rc = CURLUE_OK, password_rc = CURLUE_OK;
  (void)url_part(u.get(), CURLUPART_USER, 0, &user_rc);
  (void)url_part(u.get(), CURLUPART_PASSWORD, 0, &password_rc);
  if (user_rc != CURLUE_NO_USER || password_rc != CURLUE_NO_PASSWORD)
    return make_error(ErrorKind::Usage, "URLs with a user name or password are refused (send an "
                                        "Authorization header instead)");
  std::string host = lower(url_part(u.get(), CURLUPART_HOST, 0));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return make_error(ErrorKind::Usage, "the URL has no host");
  p.url.host = std::move(host);
  const std::string port = url_part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (!port.empty()) {
    long n = std::strtol(port.c_str(), nullptr, 10);
    if (n <= 0 || n > 65535) return make_error(ErrorKind::Usage, "the URL has a bad port");
    p.url.port = static_cast<std::uint16_t>(n);
  }
  p.url.target = url_part(u.get(), CURLUPART_PATH, 0);
  if (p.url.target.empty()) p.url.target = "/";
  CURLUcode query_rc = CURLUE_OK;
  std::string query = url_part(u.get(), CURLUPART_QUERY, 0, &query_rc);
  if (query_rc == CURLUE_OK) p.url.target += "?" + query;
  p.url.url = url_part(u.get(), CURLUPART_URL, 0);
  return p;
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Headers that describe a request body; removed with the body when a redirect turns the
// request into a GET (as browsers do).
bool is_body_header(std::string_view name) {
  for (std::string_view h : {"content-length", "content-type", "content-encoding", "content-language",
                             "content-location", "transfer-encoding"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

// Credentials meant for the first host; never carried to another one.
bool is_credential_header(std::string_view name) {
  return iequals(name, "authorization") || iequals(name, "proxy-authorization") || iequals(name, "cookie");
}

}  // namespace

// Framing is libcurl's job: a Content-Length or Transfer-Encoding from the agent could
// contradict the body actually sent, and "Expect" is set by kz. So is Accept-Encoding:
// kz asks for identity, because the response is redacted before the agent sees it and a
// value inside a compressed body would pass the redaction.

bool is_engine_header(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "expect") ||
         iequals(name, "accept-encoding");
}

namespace {

// The response's Content-Encoding when it is a coding other than identity, else "".
std::string content_coding(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [k, v] : headers)
    if (k == "content-encoding" && !v.empty() && !iequals(v, "identity")) return v;
  return {};
}

// Everything one hop's callbacks need; lives on fetch()'s stack during the transfer.
struct HopState {
  const AddressPolicy* policy = nullptr;
  std::string refusal;                                        // first address the guard refused
  std::vector<std::pair<std::string, std::string>> headers;   // of the latest response block
  ScrubbedString body;
  std::size_t max_body = 0;
  bool truncated = false;
};

curl_socket_t open_guarded_socket(void* user, curlsocktype purpose, curl_sockaddr* a) {
  (void)purpose;
  auto* st = static_cast<HopState*>(user);
  std::string why = address_refusal(&a->addr, a->addrlen, *st->policy);
  if (!why.empty()) {
    if (st->refusal.empty()) st->refusal = std::move(why);
    return CURL_SOCKET_BAD;   // libcurl tries the next address, or fails with COULDNT_CONNECT
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

size_t on_body(char* p, size_t size, size_t n, void* user) {
  auto* st = static_cast<HopState*>(user);
  std::string& s = st->body.str();
  const size_t len = size * n;
  const size_t room = st->max_body - s.size();
  const size_t take = std::min(len, room);
  // Grow by reallocation we control, so no unwiped copy of a partial body is left behind.
  if (s.size() + take > s.capacity()) {
    std::string bigger;
    bigger.reserve(std::min(st->max_body, std::max(s.capacity() * 2, s.size() + take + 1024)));
    bigger.append(s);
    wipe(s);
    s.swap(bigger);
  }
  s.append(p, take);
  if (take < len) {
    // Past the cap: stop the transfer (status and headers are already in); fetch() turns
    // the resulting CURLE_WRITE_ERROR into a truncated success.
    st->truncated = true;
    return 0;
  }
  return len;
}

size_t on_header(char* p, size_t size, size_t n, void* user) {
  auto* st = static_cast<HopState*>(user);
  const size_t len = size * n;
  std::string_view line(p, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  auto trim = [](std::string_view v) {
    auto b = v.find_first_not_of(" \t");
    if (b == std::string_view::npos) return std::string();
    auto e = v.find_last_not_of(" \t");
    return std::string(v.substr(b, e - b + 1));
  };
  if (line.rfind("HTTP/", 0) == 0) {
    st->headers.clear();   // a new response block: a 1xx interim one is forgotten
  } else if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
    if (!st->headers.empty()) {   // obsolete line folding: continues the previous value
      std::string& v = st->headers.back().second;
      v += (v.empty() ? "" : " ") + trim(line);
    }
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    st->headers.emplace_back(lower(std::string(line.substr(0, colon))), trim(line.substr(colon + 1)));
  }
  return len;
}

// One share handle for every fetch of the process: DNS answers and TLS sessions are
// reused between calls, so a second fetch to a host resumes its TLS session instead of a
// full handshake. Connections are not shared: each hop opens its own, through the
// address guard. Never cleaned up (it lives as long as the process).
CURLSH* fetch_share() {
  static CURLSH* share = [] {
    const CurlApi& api = curl_api();
    CURLSH* sh = api.share_init();
    if (sh == nullptr) return sh;
    static std::mutex locks[CURL_LOCK_DATA_LAST];
    auto lock = +[](CURL*, curl_lock_data data, curl_lock_access, void*) { locks[data].lock(); };
    auto unlock = +[](CURL*, curl_lock_data data, void*) { locks[data].unlock(); };
    api.share_setopt(sh, CURLSHOPT_LOCKFUNC, lock);
    api.share_setopt(sh, CURLSHOPT_UNLOCKFUNC, unlock);
    api.share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    api.share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return sh;
  }();
  return share;
}

struct HopResult {
  long status = 0;
  std::string location;   // the absolute redirect target, "" when none
  std::string peer;
};

Result<HopResult> perform_hop(const HttpsUrl& url, const std::string& method, const PreparedHop& wire,
                              const FetchOptions& opts, Clock::time_point deadline, HopState& st) {
  const CurlApi& api = curl_api();
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (remaining.count() <= 0)
    return make_error(ErrorKind::Timeout, "fetch: timed out after " + std::to_string(opts.timeout.count()) + " ms");
  std::unique_ptr<CURL, CurlDeleter> curl(api.easy_init());
  if (!curl) return make_error(ErrorKind::Internal, "fetch: cannot initialise libcurl");

  // The wire headers may hold secret values: ScrubbedStrings keep the formatted lines so
  // they are wiped once the hop is over (libcurl copies them into its own buffer, which
  // it frees; nothing we can do about that copy).
  std::vector<ScrubbedString> lines;
  lines.reserve(wire.headers.size() + 2);
  std::unique_ptr<curl_slist, SlistDeleter> hdrs;
  bool has_content_type = false;
  for (const auto& [name, value] : wire.headers) {
    if (!is_http_token(name)) return make_error(ErrorKind::Usage, "fetch: a header name is not a valid token");
    const std::string& v = value.str();
    if (v.find_first_of("\r\n", 0) != std::string::npos || v.find('\0') != std::string::npos)
      return make_error(ErrorKind::Usage, "fetch: header " + name + " has a line break or NUL in its value");
    if (is_engine_header(name)) continue;
    if (iequals(name, "content-type")) has_content_type = true;
    // "Name;" is libcurl's way of sending a header with an empty value ("Name:" removes one).
    lines.emplace_back(v.empty() ? name + ";" : name + ": " + v);
    hdrs.reset(api.slist_append(hdrs.release(), lines.back().str().c_str()));
    if (!hdrs) return make_error(ErrorKind::Internal, "fetch: out of memory");
  }
  // No 100-continue round trip, no invented form Content-Type for a POST body, and an
  // uncompressed response (see is_engine_header).
  for (const char* extra : {"Expect:", "Content-Type:", "Accept-Encoding: identity"}) {
    if (std::string_view(extra) == "Content-Type:" && has_content_type) continue;
    hdrs.reset(api.slist_append(hdrs.release(), extra));
    if (!hdrs) return make_error(ErrorKind::Internal, "fetch: out of memory");
  }

  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  // The options the guarantees rest on must take: an older libcurl that does not know
  // one (PROTOCOLS_STR is 7.85+) fails the fetch rather than run without it.
  const bool guarded =
      api.easy_setopt(c, CURLOPT_URL, url.url.c_str()) == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&   // by hand, each hop re-checked
      api.easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&            // ignore *_proxy: kz talks to the host
      api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
      (opts.ca_file.empty() || api.easy_setopt(c, CURLOPT_CAINFO, opts.ca_file.c_str()) == CURLE_OK) &&
      api.easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_guarded_socket) == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_OPENSOCKETDATA, &st) == CURLE_OK &&
      api.easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count())) == CURLE_OK;
  if (!guarded) return make_error(ErrorKind::Internal, "fetch: this libcurl lacks an option kz needs (7.85 or later)");
  if (CURLSH* sh = fetch_share(); sh != nullptr) api.easy_setopt(c, CURLOPT_SHARE, sh);
  api.easy_setopt(c, CURLOPT_USERAGENT, "keyzero-fetch/0.1");   // the agent's User-Agent wins
  if (method == "HEAD") {
    api.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else {
    api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!wire.body.str().empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    // Not COPYPOSTFIELDS: libcurl reads the ScrubbedString in place, so no copy outlives it.
    api.easy_setopt(c, CURLOPT_POSTFIELDS, wire.body.str().c_str());
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(wire.body.str().size()));
  }
  api.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &st);
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &st);
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

  const CURLcode rc = api.easy_perform(c);
  const bool capped = rc == CURLE_WRITE_ERROR && st.truncated;
  if (rc != CURLE_OK && !capped) {
    const std::string where = "fetch " + url.host + ": ";
    if (!st.refusal.empty()) return make_error(ErrorKind::Denied, where + st.refusal);
    // errbuf holds libcurl's text, built from host names and codes, never header values.
    const std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : api.easy_strerror(rc);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return make_error(ErrorKind::Timeout, where + "timed out (" + detail + ")");
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_ISSUER_ERROR:
        return make_error(ErrorKind::Tls, where + "TLS verification failed (" + detail + ")");
      case CURLE_UNSUPPORTED_PROTOCOL:
        return make_error(ErrorKind::Usage, where + "only https:// URLs can be fetched");
      default:
        return make_error(ErrorKind::Network, where + detail);
    }
  }
  HopResult r;
  api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  char* location = nullptr;
  if (api.easy_getinfo(c, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location != nullptr)
    r.location = location;
  char* ip = nullptr;
  if (api.easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) r.peer = ip;
  return r;
}

}  // namespace

bool is_http_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

Result<HttpsUrl> parse_https_url(std::string_view url) {
  auto p = parse_absolute(url);
  if (!p) return p.take_error();
  if (p->scheme != "https") return make_error(ErrorKind::Usage, "only https:// URLs can be fetched");
  return std::move(p->url);
}

Result<FetchResponse> fetch(const FetchRequest& req, const FetchOptions& opts, const PrepareHop& prepare) {
  const auto deadline = Clock::now() + opts.timeout;
  if (!curl_api().ok) return make_error(ErrorKind::Internal, "fetch: cannot load libcurl.so.4 (install libcurl4)");
  if (!is_http_token(req.method)) return make_error(ErrorKind::Usage, "fetch: the method is not a valid HTTP token");
  auto first = parse_https_url(req.url);
  if (!first) return first.take_error();

  FetchRequest cur = req;   // the agent's request as adjusted by the redirect rules
  HttpsUrl url = *first;
  cur.url = url.url;
  bool credentials_dropped = false;
  for (int hop = 0;; ++hop) {
    HopInfo info;
    info.hop = hop;
    info.url = url;
    info.method = cur.method;
    // A port change counts: another port may be another service with other owners.
    info.host_changed = url.host != first->host || url.port != first->port;
    if (info.host_changed && !credentials_dropped) {
      // Once the chain leaves the first host, credentials stay behind for good, even if a
      // later redirect comes back.
      std::erase_if(cur.headers, [](const auto& h) { return is_credential_header(h.first); });
      credentials_dropped = true;
    }
    auto wire = prepare(info, cur);
    if (!wire) return wire.take_error();

    HopState st;
    st.policy = &opts.addresses;
    st.max_body = opts.max_body;
    auto r = perform_hop(url, cur.method, *wire, opts, deadline, st);
    if (!r) return r.take_error();

    if (is_redirect(r->status) && !r->location.empty()) {
      if (hop >= opts.max_redirects)
        return make_error(ErrorKind::Denied, "fetch: more than " + std::to_string(opts.max_redirects) + " redirects");
      auto next = parse_absolute(r->location);
      if (!next) return make_error(ErrorKind::Usage, "fetch: redirect to a bad URL refused (" + next.error().message + ")");
      if (next->scheme != "https") return make_error(ErrorKind::Usage, "fetch: redirect to a non-https URL refused");
      const bool to_get = (r->status == 303 && cur.method != "HEAD") ||
                          ((r->status == 301 || r->status == 302) && cur.method == "POST");
      if (to_get || r->status == 303) {   // 303 after HEAD stays HEAD, still without a body
        if (to_get) cur.method = "GET";
        wipe(cur.body);
        std::erase_if(cur.headers, [](const auto& h) { return is_body_header(h.first); });
      }
      url = std::move(next->url);
      cur.url = url.url;
      continue;
    }

    if (const std::string coding = content_coding(st.headers); !coding.empty() && !st.body.str().empty()) {
      // The body would reach the agent unredacted: refused, and its bytes wiped.
      const bool plain = std::all_of(coding.begin(), coding.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == ',' || c == ' ';
      });
      return make_error(ErrorKind::Denied, "fetch " + url.host + ": the response is content-coded (" +
                                               (plain ? coding.substr(0, 40) : std::string("?")) +
                                               ") although kz asked for identity; refused, because kz cannot "
                                               "redact values inside a compressed body");
    }
    FetchResponse resp;
    resp.status = r->status;
    resp.headers = std::move(st.headers);
    resp.body = std::move(st.body);
    resp.truncated = st.truncated;
    resp.final_url = url.url;
    resp.redirects = hop;
    resp.peer_address = std::move(r->peer);
    return resp;
  }
}

}  // namespace kz::mcp
