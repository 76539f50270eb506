// The proxy's first look at a connection: TLS or not, complete or not, SNI and ALPN.
#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/client_hello.h"

namespace kz {
namespace {

using Bytes = std::vector<unsigned char>;

// The first flight of a real OpenSSL client (memory BIOs, no network).
Bytes openssl_hello(const char* sni, const std::vector<std::string>& alpn) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (sni != nullptr) SSL_set_tlsext_host_name(ssl, sni);
  if (!alpn.empty()) {
    Bytes wire;
    for (const auto& a : alpn) {
      wire.push_back(static_cast<unsigned char>(a.size()));
      wire.insert(wire.end(), a.begin(), a.end());
    }
    SSL_set_alpn_protos(ssl, wire.data(), static_cast<unsigned>(wire.size()));
  }
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);   // WANT_READ after writing the ClientHello
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio, &data);
  Bytes out(data, data + n);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

void put16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}

// A hand-made ClientHello (one record) with the given raw server_name bytes.
Bytes crafted_hello(const std::string& sni) {
  Bytes body = {3, 3};
  body.insert(body.end(), 32, 0xab);   // random
  body.push_back(0);                   // session id
  put16(body, 2);
  body.push_back(0x13);
  body.push_back(0x01);
  body.push_back(1);
  body.push_back(0);                   // compression: null
  Bytes ext;
  put16(ext, 0);                       // server_name
  put16(ext, sni.size() + 5);
  put16(ext, sni.size() + 3);
  ext.push_back(0);
  put16(ext, sni.size());
  ext.insert(ext.end(), sni.begin(), sni.end());
  put16(body, ext.size());
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes msg = {1, 0};
  put16(msg, body.size());
  msg.insert(msg.end(), body.begin(), body.end());
  Bytes rec = {22, 3, 1};
  put16(rec, msg.size());
  rec.insert(rec.end(), msg.begin(), msg.end());
  return rec;
}

// The same handshake message split over two records at `at` bytes of its payload.
Bytes refragment(const Bytes& one_record, std::size_t at) {
  const Bytes payload(one_record.begin() + 5, one_record.end());
  Bytes out = {22, 3, 1};
  put16(out, at);
  out.insert(out.end(), payload.begin(), payload.begin() + static_cast<long>(at));
  out.insert(out.end(), {22, 3, 1});
  put16(out, payload.size() - at);
  out.insert(out.end(), payload.begin() + static_cast<long>(at), payload.end());
  return out;
}

ClientHello parse(const Bytes& b, std::size_t n) { return parse_client_hello(b.data(), n); }
ClientHello parse(const Bytes& b) { return parse(b, b.size()); }

TEST(ClientHello, RealOpenSslHello) {
  const Bytes b = openssl_hello("api.example.com", {"h2", "http/1.1"});
  const ClientHello h = parse(b);
  ASSERT_EQ(h.status, HelloStatus::Complete);
  EXPECT_EQ(h.sni, "api.example.com");
  EXPECT_TRUE(h.sni_valid);
  EXPECT_EQ(h.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_TRUE(h.offers("http/1.1"));
  EXPECT_FALSE(h.offers("http/1.0"));
}

TEST(ClientHello, EveryPrefixNeedsMore) {
  const Bytes b = openssl_hello("localhost", {"http/1.1"});
  for (std::size_t n = 1; n < b.size(); ++n) EXPECT_EQ(parse(b, n).status, HelloStatus::NeedMore) << n;
}

TEST(ClientHello, TrailingBytesAfterTheHelloAreIgnored) {
  Bytes b = openssl_hello("localhost", {});
  b.insert(b.end(), {20, 3, 3, 0, 1, 1});   // a ChangeCipherSpec record after it
  const ClientHello h = parse(b);
  ASSERT_EQ(h.status, HelloStatus::Complete);
  EXPECT_EQ(h.sni, "localhost");
  EXPECT_TRUE(h.alpn.empty());
}

TEST(ClientHello, NoSni) {
  const ClientHello h = parse(openssl_hello(nullptr, {"http/1.1"}));
  ASSERT_EQ(h.status, HelloStatus::Complete);
  EXPECT_EQ(h.sni, "");
  EXPECT_EQ(h.alpn, std::vector<std::string>{"http/1.1"});
}

TEST(ClientHello, SplitOverRecords) {
  const Bytes one = openssl_hello("split.example", {"http/1.1"});
  for (std::size_t at : {1u, 3u, 4u, 40u, 100u}) {
    const Bytes two = refragment(one, at);
    const ClientHello h = parse(two);
    ASSERT_EQ(h.status, HelloStatus::Complete) << at;
    EXPECT_EQ(h.sni, "split.example");
    for (std::size_t n = 1; n < two.size(); ++n) ASSERT_EQ(parse(two, n).status, HelloStatus::NeedMore) << at << " " << n;
  }
}

TEST(ClientHello, NotTls) {
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(parse_client_hello(reinterpret_cast<const unsigned char*>(http.data()), http.size()).status,
            HelloStatus::NotTls);
  EXPECT_EQ(parse_client_hello(reinterpret_cast<const unsigned char*>("G"), 1).status, HelloStatus::NotTls);
  const std::string ssh = "SSH-2.0-OpenSSH_9.2\r\n";
  EXPECT_EQ(parse_client_hello(reinterpret_cast<const unsigned char*>(ssh.data()), ssh.size()).status,
            HelloStatus::NotTls);
  // A handshake record that is not a ClientHello (type 2, ServerHello).
  Bytes b = crafted_hello("x.example");
  b[5] = 2;
  EXPECT_EQ(parse(b).status, HelloStatus::NotTls);
  // Record version byte not 3.
  Bytes v = crafted_hello("x.example");
  v[1] = 2;
  EXPECT_EQ(parse(v).status, HelloStatus::NotTls);
}

TEST(ClientHello, InvalidServerNames) {
  EXPECT_TRUE(parse(crafted_hello("good-name.example")).sni_valid);
  for (const std::string& bad : {std::string("bad name"), std::string("a..b"), std::string("x/y"),
                                std::string("evil\r\nHost"), std::string(300, 'a')}) {
    const ClientHello h = parse(crafted_hello(bad));
    ASSERT_EQ(h.status, HelloStatus::Complete) << bad;
    EXPECT_FALSE(h.sni_valid) << bad;
  }
}

TEST(ClientHello, Malformed) {
  Bytes b = crafted_hello("x.example");
  // Extensions length claims more than the message has.
  b[5 + 4 + 2 + 32 + 1 + 2 + 2 + 2] = 0x7f;
  EXPECT_EQ(parse(b).status, HelloStatus::Malformed);
  // A handshake message longer than the parser's bound.
  Bytes big = {22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00};
  EXPECT_EQ(parse(big).status, HelloStatus::Malformed);
  // Record too long for TLS.
  Bytes huge = {22, 3, 1, 0xff, 0xff};
  EXPECT_EQ(parse(huge).status, HelloStatus::NotTls);
}

}  // namespace
}  // namespace kz
