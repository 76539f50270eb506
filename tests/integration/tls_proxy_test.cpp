// The fallback TLS proxy end to end: real TLS on both sides (the test CA's server, an
// OpenSSL client trusting the run's ephemeral CA), the shim's rewrite and the broker's
// decisions in-process, the audit records, and a load of concurrent connections.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "secrets/decide.h"
#include "secrets/peer_verify.h"
#include "secrets/token_table.h"
#include "proxy/ephemeral_ca.h"
#include "proxy/tls_proxy.h"
#include "test_support.h"

namespace kz {
namespace {

using nlohmann::json;

const std::string kLongValue = "sk-live-0123456789abcdefghijklmnop";   // ≥ 24: token has its length
const std::string kShortValue = "short-secret-1";                      // < 24: token is longer

// ---- small OpenSSL/socket helpers ----------------------------------------------------

struct SslCtxFree { void operator()(SSL_CTX* c) const { SSL_CTX_free(c); } };
struct SslFree { void operator()(SSL* s) const { SSL_free(s); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
using CtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

int tcp_connect(const sockaddr_in& a) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

sockaddr_in loopback4(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::string issuer_cn(X509* x) {
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, cn, sizeof cn);
  return cn;
}

// A client connection through the proxy. `ca_pem`: trusted anchors (PEM text); empty:
// no verification (to look at whatever certificate comes back).
struct TlsClient {
  CtxPtr ctx;
  SslPtr ssl;
  int fd = -1;
  ~TlsClient() {
    ssl.reset();
    if (fd >= 0) ::close(fd);
  }
  bool write(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const int n = SSL_write(ssl.get(), s.data() + off, static_cast<int>(s.size() - off));
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Everything until the server closes.
  std::string read_all() {
    std::string out;
    char buf[16384];
    while (true) {
      const int n = SSL_read(ssl.get(), buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  // One HTTP/1.1 response framed by Content-Length; the body.
  bool read_response(std::string* body) {
    std::string in;
    char buf[16384];
    std::size_t head_end = std::string::npos;
    std::size_t want = 0;
    while (true) {
      if (head_end == std::string::npos) {
        head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          head_end += 4;
          const std::size_t cl = in.find("Content-Length: ");
          if (cl == std::string::npos || cl > head_end) return false;
          want = std::stoul(in.substr(cl + 16));
        }
      }
      if (head_end != std::string::npos && in.size() >= head_end + want) {
        *body = in.substr(head_end, want);
        return true;
      }
      const int n = SSL_read(ssl.get(), buf, sizeof buf);
      if (n <= 0) return false;
      in.append(buf, static_cast<std::size_t>(n));
    }
  }
  X509Ptr peer() const { return X509Ptr(SSL_get1_peer_certificate(ssl.get())); }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl.get(), &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
};

std::unique_ptr<TlsClient> tls_connect(const sockaddr_in& proxy, const std::string& sni, const std::string& ca_pem,
                                       const std::vector<std::string>& alpn = {"http/1.1"}) {
  auto c = std::make_unique<TlsClient>();
  c->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (!ca_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
    X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx.get()), ca);
    X509_free(ca);
    SSL_CTX_set_verify(c->ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  c->fd = tcp_connect(proxy);
  if (c->fd < 0) return nullptr;
  c->ssl.reset(SSL_new(c->ctx.get()));
  SSL_set_fd(c->ssl.get(), c->fd);
  if (!sni.empty()) {
    SSL_set_tlsext_host_name(c->ssl.get(), sni.c_str());
    if (!ca_pem.empty()) SSL_set1_host(c->ssl.get(), sni.c_str());
  }
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& a : alpn) wire += static_cast<char>(a.size()) + a;
    SSL_set_alpn_protos(c->ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  if (SSL_connect(c->ssl.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return c;
}

std::vector<json> read_records(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string sha256_hex(const std::string& s) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string base64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// ---- the proxy under test ------------------------------------------------------------

// The proxy's records, as they would be written.
using Audit = MemoryAuditRecorder;

struct ProxyRig {
  TokenTable table;
  std::unique_ptr<PeerVerifier> verifier;
  std::unique_ptr<EphemeralCa> ca;
  Audit audit;
  std::unique_ptr<TlsProxy> proxy;
  sockaddr_in upstream{};   // where every accepted connection "was going"

  // `hosts`: the hosts the secrets are bound to.
  void start(const std::vector<std::string>& hosts, int upstream_port, unsigned threads = 0, bool http2 = true) {
    std::vector<ResolvedSecret> s;
    s.push_back({"API_KEY", "env", SecretValue::from(kLongValue)});
    s.push_back({"SHORT_KEY", "env", SecretValue::from(kShortValue)});
    Binding b;
    b.hosts = hosts;
    auto t = TokenTable::build(std::move(s), {{"API_KEY", b}, {"SHORT_KEY", b}});
    ASSERT_TRUE(t.ok()) << t.error().message;
    table = std::move(*t);
    auto v = PeerVerifier::create(test::test_ca().ca);
    ASSERT_TRUE(v.ok());
    verifier = std::make_unique<PeerVerifier>(std::move(*v));
    auto c = EphemeralCa::create();
    ASSERT_TRUE(c.ok());
    ca = std::move(*c);
    upstream = loopback4(upstream_port);
    ProxyOptions o;
    o.decide = DecideContext{&table, verifier.get(), true};
    o.ca = ca.get();
    o.audit = &audit;
    o.original = [this](const sockaddr_storage&) -> std::optional<OriginalDestination> {
      OriginalDestination d;
      std::memcpy(&d.addr, &upstream, sizeof upstream);
      d.len = sizeof upstream;
      d.pid = getpid();
      return d;
    };
    o.threads = threads;
    o.http2 = http2;
    auto p = TlsProxy::start(std::move(o));
    ASSERT_TRUE(p.ok()) << p.error().message;
    proxy = std::move(*p);
  }
  std::string token(std::size_t i) const { return std::string(table.secrets()[i].token.view()); }
  std::string long_token() const { return token(0); }
  std::string short_token() const { return token(1); }
};

struct EchoApi {
  test::TempDir dir;
  std::string record;
  std::unique_ptr<test::ServerProcess> server;
  explicit EchoApi(const std::vector<std::string>& mode) {
    record = dir.file("record.jsonl");
    std::vector<std::string> args = mode;
    args.insert(args.end(), {"--record", record, "--no-ipv6"});
    server = std::make_unique<test::ServerProcess>("echo_api.py", args);
  }
  int port() const { return server->port(); }
  std::vector<json> records() const { return read_records(record); }
};

// ---- behaviour -----------------------------------------------------------------------

TEST(TlsProxy, SwapsTokensInHeaderQueryAndBody) {
  EchoApi api(test::tls_args());
  ProxyRig rig;
  rig.start({"localhost"}, api.port());
  const std::string tok = rig.long_token();
  auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem());
  ASSERT_TRUE(c) << "the client must trust the ephemeral CA's leaf for localhost";
  EXPECT_EQ(issuer_cn(c->peer().get()).rfind("KeyZero ephemeral CA", 0), 0u);
  EXPECT_EQ(c->alpn(), "http/1.1");
  const std::string body = "{\"key\":\"" + tok + "\"}";
  ASSERT_TRUE(c->write("POST /v1/things?api_key=" + tok + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                       tok + "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body));
  const std::string resp = c->read_all();
  EXPECT_NE(resp.find("200 OK"), std::string::npos) << resp;
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 1u);
  const json& r = recs[0];
  EXPECT_EQ(r["header"]["authorization"], "Bearer " + kLongValue);
  EXPECT_NE(r["target"].get<std::string>().find("api_key=" + kLongValue), std::string::npos) << r["target"];
  EXPECT_EQ(r["body"], "{\"key\":\"" + kLongValue + "\"}");
  EXPECT_EQ(r["framing_ok"], true);
  EXPECT_EQ(r["alpn"], "http/1.1");
  EXPECT_EQ(r["sni"], "localhost");
  EXPECT_EQ(resp.find(kLongValue), std::string::npos);

  // Audit: allow records with pid, host, secret name; never the value or the token.
  const std::string dump = rig.audit.dump();
  EXPECT_EQ(dump.find(kLongValue), std::string::npos);
  EXPECT_EQ(dump.find(tok), std::string::npos);
  bool saw_allow = false;
  for (const auto& a : rig.audit.records()) {
    if (a.value("event", "") != "swap" || a.value("decision", "") != "allow") continue;
    saw_allow = true;
    EXPECT_EQ(a["pid"], static_cast<long>(getpid()));
    EXPECT_EQ(a["host"], "localhost");
    EXPECT_EQ(a["secret"], "API_KEY");
    EXPECT_EQ(a["channel"], "openssl");
    EXPECT_EQ(a["peer"], "127.0.0.1:" + std::to_string(api.port()));
    EXPECT_FALSE(a.value("exe", "").empty());
  }
  EXPECT_TRUE(saw_allow) << dump;
}

TEST(TlsProxy, ContentLengthCorrectedAndBasicAuthSwapped) {
  EchoApi api(test::tls_args());
  ProxyRig rig;
  rig.start({"localhost"}, api.port());
  const std::string tok = rig.short_token();
  ASSERT_GT(tok.size(), kShortValue.size());
  auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem());
  ASSERT_TRUE(c);
  const std::string body = "token=" + tok + "&x=1";
  // Head and body in separate writes (as many clients do): the request is held until
  // its body is complete, then Content-Length is corrected.
  ASSERT_TRUE(c->write("POST /form HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " + base64("user:" + tok) +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n"));
  ASSERT_TRUE(c->write(body));
  const std::string resp = c->read_all();
  EXPECT_NE(resp.find("200 OK"), std::string::npos) << resp;
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["body"], "token=" + kShortValue + "&x=1");
  EXPECT_EQ(recs[0]["content_length"], ("token=" + kShortValue + "&x=1").size());
  EXPECT_EQ(recs[0]["framing_ok"], true);
  EXPECT_EQ(recs[0]["header"]["authorization"], "Basic " + base64("user:" + kShortValue));
  EXPECT_EQ(rig.audit.dump().find(kShortValue), std::string::npos);
}

TEST(TlsProxy, EchoedValueComesBackAsTheToken) {
  EchoApi api(test::tls_args());
  ProxyRig rig;
  rig.start({"localhost"}, api.port());
  const std::string tok = rig.long_token();
  auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem());
  ASSERT_TRUE(c);
  // Keep-alive: two requests on one connection (the second uses the connection grant).
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c->write("GET /echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok + "\r\n\r\n"));
    std::string body;
    ASSERT_TRUE(c->read_response(&body));
    EXPECT_NE(body.find("Bearer " + tok), std::string::npos) << body;
    EXPECT_EQ(body.find(kLongValue), std::string::npos) << body;
  }
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) EXPECT_EQ(r["header"]["authorization"], "Bearer " + kLongValue);
  c.reset();   // connection ends: the grant's uses are reported
  rig.proxy->stop();
  bool redact = false, uses = false;
  for (const auto& a : rig.audit.records()) {
    if (a.value("event", "") == "redact" && a.value("decision", "") == "allow") redact = true;
    if (a.contains("uses")) uses = true;
  }
  EXPECT_TRUE(redact) << rig.audit.dump();
  EXPECT_TRUE(uses) << rig.audit.dump();
  EXPECT_EQ(rig.audit.dump().find(kLongValue), std::string::npos);
}

TEST(TlsProxy, UnboundHostIsSplicedWithTheRealCertificate) {
  EchoApi api(test::tls_args());
  ProxyRig rig;
  rig.start({"api.example"}, api.port());
  const std::string tok = rig.long_token();
  // The client trusts only the test CA: it must see the real server certificate.
  auto c = tls_connect(rig.proxy->listen4(), "localhost", test::read_file(test::test_ca().ca));
  ASSERT_TRUE(c) << "a spliced connection shows the real server's certificate";
  EXPECT_EQ(issuer_cn(c->peer().get()), "KeyZero Test CA");
  ASSERT_TRUE(c->write("GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok +
                       "\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(c->read_all().find("200 OK"), std::string::npos);
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["header"]["authorization"], "Bearer " + tok);
}

TEST(TlsProxy, RogueUpstreamIsSplicedAndRefused) {
  EchoApi api(test::tls_args(/*rogue=*/true));
  ProxyRig rig;
  rig.start({"localhost"}, api.port());
  const std::string tok = rig.long_token();
  auto c = tls_connect(rig.proxy->listen4(), "localhost", "");   // no verification: look at the cert
  ASSERT_TRUE(c);
  X509Ptr peer = c->peer();
  ASSERT_TRUE(peer);
  EXPECT_EQ(issuer_cn(peer.get()), "localhost");   // the rogue self-signed leaf
  ASSERT_TRUE(c->write("GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok +
                       "\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(c->read_all().find("200 OK"), std::string::npos);
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["header"]["authorization"], "Bearer " + tok);
  // A client that verifies refuses the rogue certificate itself.
  EXPECT_FALSE(tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem()));
  bool refused = false;
  for (const auto& a : rig.audit.records()) {
    if (a.value("event", "") == "proxy" && a.value("decision", "") == "refuse" &&
        a.value("reason", "").rfind("upstream certificate does not verify: ", 0) == 0) {
      refused = true;
      EXPECT_EQ(a["host"], "localhost");
      EXPECT_EQ(a["pid"], static_cast<long>(getpid()));
    }
    EXPECT_NE(a.value("decision", ""), "allow") << a.dump();
  }
  EXPECT_TRUE(refused) << rig.audit.dump();
}

TEST(TlsProxy, PlainHttpPassesUnchangedAndIsAudited) {
  EchoApi api({"--plain"});
  ProxyRig rig;
  rig.start({"localhost"}, api.port());
  const std::string tok = rig.long_token();
  const int fd = tcp_connect(rig.proxy->listen4());
  ASSERT_GE(fd, 0);
  // The token split over two writes, to exercise the scanner's carry.
  const std::string req = "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok +
                          "\r\nConnection: close\r\n\r\n";
  const std::size_t cut = req.find(tok) + 10;
  ASSERT_EQ(::write(fd, req.data(), cut), static_cast<ssize_t>(cut));
  ASSERT_EQ(::write(fd, req.data() + cut, req.size() - cut), static_cast<ssize_t>(req.size() - cut));
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_NE(resp.find("200 OK"), std::string::npos);
  const auto recs = api.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["header"]["authorization"], "Bearer " + tok);
  rig.proxy->stop();
  int refusals = 0;
  for (const auto& a : rig.audit.records()) {
    if (a.value("decision", "") == "refuse" && a.value("channel", "") == "plain") {
      ++refusals;
      EXPECT_EQ(a["secret"], "API_KEY");
      EXPECT_NE(a.value("reason", "").find("plain TCP"), std::string::npos);
      EXPECT_EQ(a["pid"], static_cast<long>(getpid()));
    }
  }
  EXPECT_EQ(refusals, 1) << rig.audit.dump();
}

// The client is answered with what the destination selected from the client's own offer
// (the protocols the proxy relays): h2 only when the destination speaks it, the proxy
// relays it and [blind] http2 allows it.
TEST(TlsProxy, AlpnFollowsTheDestination) {
  std::vector<std::string> h1_only = test::tls_args();
  h1_only.insert(h1_only.end(), {"--alpn", "http/1.1"});
  EchoApi h1(h1_only);
  std::vector<std::string> both = test::tls_args();
  both.insert(both.end(), {"--alpn", "h2,http/1.1"});
  EchoApi h2(both);
  ASSERT_TRUE(proxy_relays_h2());
  {
    ProxyRig rig;
    rig.start({"localhost"}, h1.port());
    auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"h2", "http/1.1"});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->alpn(), "http/1.1") << "the destination speaks HTTP/1.1 only";
    auto only_h2 = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"h2"});
    ASSERT_TRUE(only_h2);
    EXPECT_EQ(only_h2->alpn(), "") << "no protocol both sides have";
    auto none = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->alpn(), "");
  }
  {
    ProxyRig rig;
    rig.start({"localhost"}, h2.port());
    auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"h2", "http/1.1"});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->alpn(), "h2") << "both sides speak h2";
    auto h11 = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"http/1.1"});
    ASSERT_TRUE(h11);
    EXPECT_EQ(h11->alpn(), "http/1.1") << "h2 is never offered for a client that did not offer it";
    // An unknown protocol of the client's is not passed on (the proxy could not relay it).
    auto odd = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"spdy/3", "http/1.1"});
    ASSERT_TRUE(odd);
    EXPECT_EQ(odd->alpn(), "http/1.1");
  }
  {
    ProxyRig rig;   // [blind] http2 = false
    rig.start({"localhost"}, h2.port(), 0, false);
    auto c = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"h2", "http/1.1"});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->alpn(), "http/1.1");
    auto only_h2 = tls_connect(rig.proxy->listen4(), "localhost", rig.ca->cert_pem(), {"h2"});
    ASSERT_TRUE(only_h2);
    EXPECT_EQ(only_h2->alpn(), "");
  }
}

TEST(TlsProxy, UnknownDestinationIsRefused) {
  ProxyRig rig;
  rig.start({"localhost"}, 1);
  rig.proxy->stop();
  ProxyOptions o;
  o.decide = DecideContext{&rig.table, rig.verifier.get(), true};
  o.ca = rig.ca.get();
  o.audit = &rig.audit;
  o.original = [](const sockaddr_storage&) { return std::optional<OriginalDestination>(); };
  auto p = TlsProxy::start(std::move(o));
  ASSERT_TRUE(p.ok());
  const int fd = tcp_connect((*p)->listen4());
  ASSERT_GE(fd, 0);
  char b;
  EXPECT_LE(::read(fd, &b, 1), 0);   // closed
  ::close(fd);
  (*p)->stop();
  bool refused = false;
  for (const auto& a : rig.audit.records())
    if (a.value("reason", "") == "unknown original destination") refused = true;
  EXPECT_TRUE(refused);
}

// ---- load ----------------------------------------------------------------------------

// A TLS echo server (test CA leaf): answers each request with its body. Blocking
// OpenSSL, a thread per connection; counts Authorization headers that carried the value.
class EchoBodyServer {
 public:
  EchoBodyServer() {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate_chain_file(ctx_.get(), test::test_ca().server_cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_.get(), test::test_ca().server_key.c_str(), SSL_FILETYPE_PEM);
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback4(0);
    ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(lfd_, 4096);
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~EchoBodyServer() {
    ::shutdown(lfd_, SHUT_RDWR);
    acceptor_.join();
    ::close(lfd_);
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }
  std::atomic<int> swapped{0}, requests{0}, errors{0};

 private:
  void accept_loop() {
    while (true) {
      const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      conns_.emplace_back([this, fd] { serve(fd); });
    }
  }
  void serve(int fd) {
    SslPtr ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), fd);
    if (SSL_accept(ssl.get()) == 1) {
      std::string in;
      char buf[16384];
      while (true) {
        const std::size_t he = in.find("\r\n\r\n");
        if (he != std::string::npos) {
          const std::size_t cl = in.find("Content-Length: ");
          const std::size_t n = cl < he ? std::stoul(in.substr(cl + 16)) : 0;
          if (in.size() >= he + 4 + n) {
            ++requests;
            if (in.find("Authorization: Bearer " + kLongValue + "\r\n") < he) ++swapped;
            const std::string body = in.substr(he + 4, n);
            in.erase(0, he + 4 + n);
            const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
            if (SSL_write(ssl.get(), resp.data(), static_cast<int>(resp.size())) <= 0) {
              ++errors;
              break;
            }
            continue;
          }
        }
        const int r = SSL_read(ssl.get(), buf, sizeof buf);
        if (r <= 0) break;
        in.append(buf, static_cast<std::size_t>(r));
      }
    }
    ssl.reset();
    ::close(fd);
  }
  CtxPtr ctx_;
  int lfd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> conns_;   // only the acceptor thread adds; joined after it ends
};

TEST(TlsProxy, ThousandConcurrentConnections) {
  constexpr int kConns = 1000;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 8 * kConns) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 8 * kConns);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ASSERT_GE(rl.rlim_cur, static_cast<rlim_t>(4 * kConns + 64)) << "RLIMIT_NOFILE too low for the load test";
  auto server = std::make_unique<EchoBodyServer>();
  ProxyRig rig;
  rig.start({"localhost"}, server->port());
  const std::string tok = rig.long_token();
  const std::string ca_pem = rig.ca->cert_pem();
  const sockaddr_in proxy = rig.proxy->listen4();

  std::atomic<int> ok{0}, failed{0};
  std::barrier all_connected(kConns);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  clients.reserve(kConns);
  for (int i = 0; i < kConns; ++i) {
    clients.emplace_back([&, i] {
      std::string body(2048 + (i % 7) * 1024, '\0');
      RAND_bytes(reinterpret_cast<unsigned char*>(body.data()), static_cast<int>(body.size()));
      auto c = tls_connect(proxy, "localhost", ca_pem);
      // Every connection is open (handshake done) before any request: 1,000 at once.
      all_connected.arrive_and_wait();
      if (!c) {
        ++failed;
        return;
      }
      const std::string req = "POST /echo/" + std::to_string(i) + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                              tok + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      std::string got;
      if (c->write(req) && c->write(body) && c->read_response(&got) && sha256_hex(got) == sha256_hex(body)) ++ok;
      else ++failed;
    });
  }
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ load ] %d connections, %d ok, %d failed, %.2f s\n", kConns, ok.load(), failed.load(), secs);
  EXPECT_EQ(ok.load(), kConns);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(server->requests.load(), kConns);
  EXPECT_EQ(server->swapped.load(), kConns);   // every Authorization arrived with the value
  rig.proxy->stop();
  server.reset();
  EXPECT_EQ(rig.audit.dump().find(kLongValue), std::string::npos);
}

}  // namespace
}  // namespace kz
