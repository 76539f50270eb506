// The MCP fetch engine against a local HTTPS server (tests/servers/fetch_target.py) with
// the test CA: requests and bodies as PrepareHop shapes them, the final response, the
// body cap, the redirect rules (method, body, credentials on a host change, https only,
// the hop limit), TLS verification, the address guard and the overall timeout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mcp/fetch_engine.h"
#include "test_support.h"

namespace kz::mcp {
namespace {

using nlohmann::json;

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A PrepareHop that records what it was given and swaps the token "KZ_TOK_x" for the
// value "real-secret" in header values and the body (what the blind-mode rules would do).
struct Recorder {
  struct Call {
    HopInfo info;
    FetchRequest req;
  };
  std::vector<Call> calls;
  int refuse_hop = -1;   // hop at which to return an error

  PrepareHop fn() {
    return [this](const HopInfo& info, const FetchRequest& req) -> Result<PreparedHop> {
      calls.push_back({info, req});
      if (info.hop == refuse_hop) return make_error(ErrorKind::Denied, "hop " + std::to_string(info.hop) + " refused");
      auto swap = [](std::string s) {
        for (auto at = s.find("KZ_TOK_x"); at != std::string::npos; at = s.find("KZ_TOK_x"))
          s.replace(at, 8, "real-secret");
        return s;
      };
      PreparedHop hop;
      for (const auto& [k, v] : req.headers) hop.headers.emplace_back(k, ScrubbedString(swap(v)));
      hop.body = ScrubbedString(swap(req.body));
      return hop;
    };
  }
};

// Header `name` (any case) of an echoed request; "" (and found=false) when absent.
std::string echoed_header(const json& echo, const std::string& name, bool* found = nullptr) {
  if (found != nullptr) *found = false;
  for (const auto& h : echo.at("headers")) {
    std::string k = h.at(0).get<std::string>();
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (k == name) {
      if (found != nullptr) *found = true;
      return h.at(1).get<std::string>();
    }
  }
  return "";
}

std::string response_header(const FetchResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

class FetchEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<test::ServerProcess>("fetch_target.py", test::tls_args()); }
  static void TearDownTestSuite() { server_.reset(); }

  // Loopback allowed: the test server is on 127.0.0.1.
  static FetchOptions options() {
    FetchOptions o;
    o.addresses.allow_loopback = true;
    o.ca_file = test::test_ca().ca;
    o.timeout = std::chrono::milliseconds(20000);
    return o;
  }
  static std::string url(const std::string& path, const std::string& host = "127.0.0.1") {
    return "https://" + host + ":" + std::to_string(server_->port()) + path;
  }
  static std::string redirect(const std::string& to, int code) {
    return url("/redirect?code=" + std::to_string(code) + "&to=" + percent_encode(to));
  }

  static std::unique_ptr<test::ServerProcess> server_;
};

std::unique_ptr<test::ServerProcess> FetchEngine::server_;

TEST(ParseHttpsUrl, AcceptsHttpsAndSplitsIt) {
  auto u = parse_https_url("https://API.Example.com/v1/x?y=1#frag");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/v1/x?y=1");
  auto v = parse_https_url("https://[::1]:8443");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->host, "::1");
  EXPECT_EQ(v->port, 8443);
  EXPECT_EQ(v->target, "/");
  EXPECT_EQ(v->url.rfind("https://[::1]:8443/", 0), 0u) << v->url;
}

TEST(ParseHttpsUrl, RefusesOtherSchemesAndForms) {
  for (const char* bad : {"http://example.com/", "ftp://example.com/", "file:///etc/passwd", "example.com/x",
                          "/relative", "", "https://", "https://user:pw@example.com/", "https://user@example.com/"}) {
    auto u = parse_https_url(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.error().kind, ErrorKind::Usage) << bad;
  }
  auto h = parse_https_url("http://example.com/");
  EXPECT_EQ(h.error().message, "only https:// URLs can be fetched");
  EXPECT_NE(parse_https_url("https://u:p@example.com/").error().message.find("user name or password"), std::string::npos);
}

TEST_F(FetchEngine, GetWithPreparedHeader) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/echo?q=1");
  req.headers = {{"Authorization", "Bearer KZ_TOK_x"}, {"X-Plain", "v"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->redirects, 0);
  EXPECT_EQ(r->peer_address, "127.0.0.1");
  EXPECT_EQ(r->final_url, url("/echo?q=1"));
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["target"], "/echo?q=1");
  EXPECT_EQ(echoed_header(echo, "authorization"), "Bearer real-secret");   // the prepared value went out
  EXPECT_EQ(echoed_header(echo, "x-plain"), "v");
  EXPECT_EQ(echo["body"], "");
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].info.hop, 0);
  EXPECT_EQ(rec.calls[0].info.url.host, "127.0.0.1");
  EXPECT_EQ(rec.calls[0].info.method, "GET");
  EXPECT_FALSE(rec.calls[0].info.host_changed);
  EXPECT_EQ(rec.calls[0].req.headers, req.headers);   // PrepareHop sees the agent's form
  EXPECT_EQ(response_header(*r, "content-type"), "application/json");
}

TEST_F(FetchEngine, PostWithPreparedBody) {
  Recorder rec;
  FetchRequest req;
  req.method = "POST";
  req.url = url("/echo");
  // The agent's Content-Length counts the token, not the value: framing is libcurl's.
  req.headers = {{"Content-Type", "application/json"}, {"Content-Length", "18"}, {"Expect", "100-continue"}};
  req.body = R"({"key":"KZ_TOK_x"})";
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["method"], "POST");
  EXPECT_EQ(echo["body"], R"({"key":"real-secret"})");
  EXPECT_EQ(echoed_header(echo, "content-type"), "application/json");
  EXPECT_EQ(echoed_header(echo, "content-length"), "21");
  bool expect = true;
  echoed_header(echo, "expect", &expect);
  EXPECT_FALSE(expect);   // no 100-continue round trip
}

TEST_F(FetchEngine, EmptyPostHasNoInventedContentType) {
  Recorder rec;
  FetchRequest req;
  req.method = "PUT";
  req.url = url("/echo");
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["method"], "PUT");
  EXPECT_EQ(echoed_header(echo, "content-length"), "0");
  bool ct = true;
  echoed_header(echo, "content-type", &ct);
  EXPECT_FALSE(ct);
}

TEST_F(FetchEngine, FinalResponseHeadersInOrderWithDuplicates) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/set-cookie");
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<std::string> cookies;
  for (const auto& [k, v] : r->headers) {
    EXPECT_EQ(k, [](std::string s) {
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return s;
    }(k));
    if (k == "set-cookie") cookies.push_back(v);
  }
  EXPECT_EQ(cookies, (std::vector<std::string>{"a=1; Secure", "b=2"}));
  EXPECT_EQ(response_header(*r, "x-padded"), "padded value");
  EXPECT_EQ(response_header(*r, "server").rfind("kz-fetch-target", 0), 0u);
}

TEST_F(FetchEngine, InterimResponseHeadersIgnored) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/interim");
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.str(), "final");
  EXPECT_EQ(response_header(*r, "x-final"), "yes");
  EXPECT_EQ(response_header(*r, "link"), "");   // from the 103 block
}

TEST_F(FetchEngine, RedirectResponseHeadersNotKept) {
  Recorder rec;
  FetchRequest req;
  req.url = redirect(url("/big?n=5"), 302);
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.str(), "01234");
  EXPECT_EQ(response_header(*r, "location"), "");
  int content_lengths = 0;
  for (const auto& [k, v] : r->headers) content_lengths += k == "content-length";
  EXPECT_EQ(content_lengths, 1);
  EXPECT_EQ(r->redirects, 1);
  EXPECT_EQ(r->final_url, url("/big?n=5"));
}

TEST_F(FetchEngine, BodyCappedAndTruncated) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/big?n=200000");
  FetchOptions o = options();
  o.max_body = 1000;
  auto r = fetch(req, o, rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->truncated);
  ASSERT_EQ(r->body.str().size(), 1000u);
  EXPECT_EQ(r->body.str().substr(0, 12), "012345678901");
  EXPECT_EQ(response_header(*r, "content-length"), "200000");

  req.url = url("/big?n=1000");   // exactly the cap: not truncated
  auto exact = fetch(req, o, rec.fn());
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  EXPECT_FALSE(exact->truncated);
  EXPECT_EQ(exact->body.str().size(), 1000u);
}

TEST_F(FetchEngine, BinaryBodyUnchanged) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/binary");
  req.headers = {{"Accept-Encoding", "identity"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->body.str().size(), 256u);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(static_cast<unsigned char>(r->body.str()[i]), i);
}

TEST_F(FetchEngine, AsksForIdentityAndRefusesCodedBodies) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/echo/ae");
  req.headers = {{"Accept-Encoding", "gzip, br"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  std::vector<std::string> ae;
  for (const auto& h : echo["headers"])
    if (h[0].get<std::string>() == "Accept-Encoding") ae.push_back(h[1].get<std::string>());
  EXPECT_EQ(ae, std::vector<std::string>{"identity"});
  // A server that compresses anyway: the body never comes back.
  req.url = url("/gzip");
  auto coded = fetch(req, options(), rec.fn());
  ASSERT_FALSE(coded.ok());
  EXPECT_NE(coded.error().message.find("content-coded (gzip)"), std::string::npos) << coded.error().message;
}

TEST_F(FetchEngine, HeadHasNoBody) {
  Recorder rec;
  FetchRequest req;
  req.method = "HEAD";
  req.url = url("/big?n=500");
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.str(), "");
  EXPECT_EQ(response_header(*r, "content-length"), "500");
}

TEST_F(FetchEngine, SeeOtherAfterPostBecomesGetWithoutBody) {
  Recorder rec;
  FetchRequest req;
  req.method = "POST";
  req.url = redirect(url("/echo/after"), 303);
  req.headers = {{"Content-Type", "application/json"}, {"X-Keep", "1"}};
  req.body = R"({"a":1})";
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["target"], "/echo/after");
  EXPECT_EQ(echo["body"], "");
  EXPECT_EQ(echoed_header(echo, "x-keep"), "1");
  bool ct = true;
  echoed_header(echo, "content-type", &ct);
  EXPECT_FALSE(ct);
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_EQ(rec.calls[1].info.hop, 1);
  EXPECT_EQ(rec.calls[1].info.method, "GET");
  EXPECT_EQ(rec.calls[1].req.method, "GET");
  EXPECT_EQ(rec.calls[1].req.body, "");
  EXPECT_EQ(rec.calls[1].req.url, url("/echo/after"));
  EXPECT_FALSE(rec.calls[1].info.host_changed);
}

TEST_F(FetchEngine, FoundAfterPostBecomesGet) {
  Recorder rec;
  FetchRequest req;
  req.method = "POST";
  req.url = redirect(url("/echo"), 302);
  req.body = "x=1";
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["body"], "");
}

TEST_F(FetchEngine, TemporaryAndPermanentRedirectKeepPostBody) {
  for (int code : {307, 308}) {
    Recorder rec;
    FetchRequest req;
    req.method = "POST";
    req.url = redirect(url("/echo/kept"), code);
    req.headers = {{"Content-Type", "text/plain"}};
    req.body = "body KZ_TOK_x";
    auto r = fetch(req, options(), rec.fn());
    ASSERT_TRUE(r.ok()) << r.error().message;
    json echo = json::parse(r->body.str());
    EXPECT_EQ(echo["method"], "POST") << code;
    EXPECT_EQ(echo["body"], "body real-secret") << code;
    EXPECT_EQ(echoed_header(echo, "content-type"), "text/plain") << code;
    ASSERT_EQ(rec.calls.size(), 2u);
    EXPECT_EQ(rec.calls[1].info.method, "POST");
    EXPECT_EQ(rec.calls[1].req.body, "body KZ_TOK_x");   // the agent's form, prepared again
  }
}

TEST_F(FetchEngine, HostChangeDropsCredentials) {
  Recorder rec;
  FetchRequest req;
  // 127.0.0.1 → localhost: two host names for the same server (both in the leaf's SANs).
  req.url = redirect(url("/echo/other", "localhost"), 302);
  req.headers = {{"authorization", "Bearer KZ_TOK_x"}, {"Cookie", "s=1"}, {"PROXY-Authorization", "Basic x"},
                 {"X-Keep", "KZ_TOK_x"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  json echo = json::parse(r->body.str());
  EXPECT_EQ(echo["target"], "/echo/other");
  for (const char* h : {"authorization", "cookie", "proxy-authorization"}) {
    bool found = true;
    echoed_header(echo, h, &found);
    EXPECT_FALSE(found) << h;
  }
  EXPECT_EQ(echoed_header(echo, "x-keep"), "real-secret");
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_FALSE(rec.calls[0].info.host_changed);
  EXPECT_EQ(rec.calls[0].req.headers.size(), 4u);
  EXPECT_TRUE(rec.calls[1].info.host_changed);
  EXPECT_EQ(rec.calls[1].info.url.host, "localhost");
  ASSERT_EQ(rec.calls[1].req.headers.size(), 1u);
  EXPECT_EQ(rec.calls[1].req.headers[0].first, "X-Keep");
  EXPECT_EQ(r->final_url, url("/echo/other", "localhost"));
}

TEST_F(FetchEngine, CredentialsStayDroppedAfterComingBack) {
  Recorder rec;
  FetchRequest req;
  // 127.0.0.1 → localhost → 127.0.0.1: the last hop is the first host again, but the
  // chain has left it once, so the credentials stay behind.
  req.url = redirect("https://localhost:" + std::to_string(server_->port()) + "/redirect?to=" +
                         percent_encode(url("/echo/back")),
                     302);
  req.headers = {{"Authorization", "Bearer KZ_TOK_x"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(rec.calls.size(), 3u);
  EXPECT_FALSE(rec.calls[2].info.host_changed);
  EXPECT_TRUE(rec.calls[2].req.headers.empty());
  bool found = true;
  echoed_header(json::parse(r->body.str()), "authorization", &found);
  EXPECT_FALSE(found);
}

TEST_F(FetchEngine, PortChangeCountsAsHostChange) {
  test::ServerProcess other("fetch_target.py", test::tls_args());
  Recorder rec;
  FetchRequest req;
  req.url = redirect("https://127.0.0.1:" + std::to_string(other.port()) + "/echo", 307);
  req.headers = {{"Authorization", "Bearer KZ_TOK_x"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(rec.calls.size(), 2u);
  EXPECT_TRUE(rec.calls[1].info.host_changed);
  EXPECT_EQ(rec.calls[1].info.url.port, other.port());
  bool found = true;
  echoed_header(json::parse(r->body.str()), "authorization", &found);
  EXPECT_FALSE(found);
}

TEST_F(FetchEngine, PrepareHopRefusalStopsTheFetch) {
  Recorder rec;
  rec.refuse_hop = 1;
  FetchRequest req;
  req.url = redirect(url("/echo", "localhost"), 302);
  auto r = fetch(req, options(), rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied);
  EXPECT_EQ(r.error().message, "hop 1 refused");
  EXPECT_EQ(rec.calls.size(), 2u);
}

TEST_F(FetchEngine, TooManyRedirects) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/loop");
  FetchOptions o = options();
  o.max_redirects = 3;
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied);
  EXPECT_NE(r.error().message.find("more than 3 redirects"), std::string::npos) << r.error().message;
  EXPECT_EQ(rec.calls.size(), 4u);   // the first request and three redirects
  EXPECT_EQ(rec.calls[3].info.url.target, "/loop");   // a relative Location, resolved

  // Exactly max_redirects is fine.
  Recorder ok_rec;
  req.url = redirect(redirect(redirect(url("/echo"), 302), 302), 302);
  auto fine = fetch(req, o, ok_rec.fn());
  ASSERT_TRUE(fine.ok()) << fine.error().message;
  EXPECT_EQ(fine->redirects, 3);
}

TEST_F(FetchEngine, RedirectToHttpRefused) {
  Recorder rec;
  FetchRequest req;
  req.url = redirect("http://127.0.0.1:" + std::to_string(server_->port()) + "/echo", 302);
  req.headers = {{"Authorization", "Bearer KZ_TOK_x"}};
  auto r = fetch(req, options(), rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  EXPECT_NE(r.error().message.find("redirect to a non-https URL refused"), std::string::npos) << r.error().message;
  EXPECT_EQ(rec.calls.size(), 1u);
}

TEST_F(FetchEngine, ThreeXxWithoutLocationIsFinal) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/no-location?code=302");   // nothing to follow
  auto r = fetch(req, options(), rec.fn());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->redirects, 0);
  EXPECT_EQ(r->body.str(), "moved, but not saying where");
  EXPECT_EQ(rec.calls.size(), 1u);
}

TEST_F(FetchEngine, HttpUrlRefusedBeforeAnything) {
  Recorder rec;
  FetchRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/echo";
  auto r = fetch(req, options(), rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  EXPECT_TRUE(rec.calls.empty());
}

TEST_F(FetchEngine, BadMethodOrHeaderRefused) {
  Recorder rec;
  FetchRequest req;
  req.method = "GET /x HTTP/1.1\r\nX:";
  req.url = url("/echo");
  auto r = fetch(req, options(), rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Usage);
  req.method = "GET";
  req.headers = {{"X-Bad", "a\r\nHost: evil"}};
  auto h = fetch(req, options(), rec.fn());
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().kind, ErrorKind::Usage);
  EXPECT_EQ(h.error().message.find("evil"), std::string::npos);   // no value in the message
}

TEST(FetchEngineTls, UnverifiedServerIsTlsError) {
  test::ServerProcess rogue("fetch_target.py", test::tls_args(/*rogue=*/true));
  Recorder rec;
  FetchRequest req;
  req.url = "https://127.0.0.1:" + std::to_string(rogue.port()) + "/echo";
  req.headers = {{"Authorization", "Bearer KZ_TOK_x"}};
  FetchOptions o;
  o.addresses.allow_loopback = true;
  o.ca_file = test::test_ca().ca;
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Tls) << r.error().message;
  EXPECT_NE(r.error().message.find("TLS verification failed"), std::string::npos) << r.error().message;
}

TEST_F(FetchEngine, LoopbackRefusedByDefault) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/echo");
  FetchOptions o = options();
  o.addresses.allow_loopback = false;
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("127.0.0.1 is a loopback address"), std::string::npos) << r.error().message;
}

TEST_F(FetchEngine, NameResolvingToLoopbackRefused) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/echo", "localhost");
  FetchOptions o = options();
  o.addresses.allow_loopback = false;
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("is a loopback address"), std::string::npos) << r.error().message;

  o.addresses.allow_loopback = true;   // and the same name is fine when loopback is allowed
  auto ok = fetch(req, o, rec.fn());
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
}

TEST_F(FetchEngine, RedirectToMetadataRefused) {
  Recorder rec;
  FetchRequest req;
  req.url = redirect("https://169.254.169.254/latest/meta-data/", 302);
  FetchOptions o = options();
  o.addresses.allow_link_local = true;   // does not cover metadata
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Denied) << r.error().message;
  EXPECT_NE(r.error().message.find("169.254.169.254 is a cloud metadata address"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(rec.calls.size(), 2u);
}

TEST_F(FetchEngine, StallingServerTimesOut) {
  Recorder rec;
  FetchRequest req;
  req.url = url("/stall");
  FetchOptions o = options();
  o.timeout = std::chrono::milliseconds(700);
  const auto start = std::chrono::steady_clock::now();
  auto r = fetch(req, o, rec.fn());
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(FetchEngine, TimeoutCoversTheWholeChain) {
  Recorder rec;
  FetchRequest req;
  req.url = redirect(url("/stall"), 302);
  FetchOptions o = options();
  o.timeout = std::chrono::milliseconds(700);
  auto r = fetch(req, o, rec.fn());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Timeout) << r.error().message;
  EXPECT_EQ(rec.calls.size(), 2u);
}

TEST_F(FetchEngine, ProxyEnvironmentIgnored) {
  // A proxy that does not exist: if libcurl used it, the fetch would fail.
  setenv("https_proxy", "http://127.0.0.1:1", 1);
  setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
  setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
  Recorder rec;
  FetchRequest req;
  req.url = url("/echo");
  auto r = fetch(req, options(), rec.fn());
  unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("ALL_PROXY");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace kz::mcp
