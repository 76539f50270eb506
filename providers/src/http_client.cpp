#include "kz/providers/http_client.h"

#include "kz/providers/curl_api.h"

#include <algorithm>
#include <cctype>
#include <memory>

namespace kz {

namespace {

size_t on_body(char* p, size_t size, size_t n, void* user) {
  auto* out = static_cast<ScrubbedString*>(user);
  std::string& s = out->str();
  const size_t len = size * n;
  // Grow by reallocation we control, so no unwiped copy of a partial body is left behind.
  if (s.size() + len > s.capacity()) {
    std::string bigger;
    bigger.reserve(std::max(s.capacity() * 2, s.size() + len + 1024));
    bigger.append(s);
    wipe(s);
    s.swap(bigger);
  }
  s.append(p, len);
  return len;
}

size_t on_header(char* p, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(p, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    auto b = value.find_first_not_of(" \t");
    auto e = value.find_last_not_of(" \t\r\n");
    (*headers)[name] = (b == std::string::npos) ? "" : value.substr(b, e - b + 1);
  }
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(user)->load() ? 1 : 0;   // non-zero aborts
}

struct CurlDeleter { void operator()(CURL* c) const { curl_api().easy_cleanup(c); } };
struct SlistDeleter { void operator()(curl_slist* l) const { curl_api().slist_free_all(l); } };

}  // namespace

Result<HttpResponse> http_send(HttpRequest req, const std::string& what) {
  const CurlApi& api = curl_api();
  if (!api.ok) return make_error(ErrorKind::Internal, what + ": cannot load libcurl.so.4 (install libcurl4)");
  std::unique_ptr<CURL, CurlDeleter> curl(api.easy_init());
  if (!curl) return make_error(ErrorKind::Internal, what + ": cannot initialise libcurl");

  HttpResponse resp;
  std::unique_ptr<curl_slist, SlistDeleter> hdrs;
  // The header list holds credentials (tokens); ScrubbedStrings keep the formatted lines
  // so they are wiped once the call is over.
  std::vector<ScrubbedString> lines;
  lines.reserve(req.headers.size());
  for (auto& [k, v] : req.headers) {
    lines.emplace_back(k + ": " + v);
    hdrs.reset(api.slist_append(hdrs.release(), lines.back().str().c_str()));
    wipe(v);
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  api.easy_setopt(c, CURLOPT_URL, req.url.c_str());
  api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "HEAD") api.easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
    api.easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  api.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &resp.headers);
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(c, CURLOPT_TIMEOUT_MS, remaining_ms(req.deadline));
  api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   // providers never follow redirects
  api.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  api.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  api.easy_setopt(c, CURLOPT_USERAGENT, "keyzero/0.1");
  curl_blob ca_blob{const_cast<char*>(req.ca_pem.data()), req.ca_pem.size(), CURL_BLOB_NOCOPY};
  if (!req.ca_pem.empty()) api.easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca_blob);
  else if (!req.ca_file.empty()) api.easy_setopt(c, CURLOPT_CAINFO, req.ca_file.c_str());
  if (req.cancel != nullptr) {
    api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    api.easy_setopt(c, CURLOPT_XFERINFODATA, req.cancel);
  }

  CURLcode rc = api.easy_perform(c);
  wipe(req.body);
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : api.easy_strerror(rc);
    switch (rc) {
      case CURLE_ABORTED_BY_CALLBACK:
        return make_error(ErrorKind::Timeout, what + ": cancelled");
      case CURLE_OPERATION_TIMEDOUT:
        return make_error(ErrorKind::Timeout, what + ": timed out (" + detail + ")");
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
        return make_error(ErrorKind::Tls, what + ": TLS verification failed (" + detail + ")");
      default:
        return make_error(ErrorKind::Network, what + ": " + detail);
    }
  }
  api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace kz
