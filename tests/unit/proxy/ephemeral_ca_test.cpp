// The run's ephemeral CA: a proper CA certificate, leaves that chain to it for exactly
// the name or address asked for, cached and safe to use from several threads.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proxy/ephemeral_ca.h"

namespace kz {
namespace {

std::unique_ptr<EphemeralCa> make_ca() {
  auto ca = EphemeralCa::create();
  EXPECT_TRUE(ca.ok()) << (ca.ok() ? "" : ca.error().message);
  return ca.ok() ? std::move(*ca) : nullptr;
}

// Verifies `leaf` against a store holding only the CA (parsed back from its PEM), for
// a host name or an IP literal. "" when it verifies.
std::string verify(const EphemeralCa& ca, X509* leaf, const std::string& host, bool ip) {
  BIO* bio = BIO_new_mem_buf(ca.cert_pem().data(), static_cast<int>(ca.cert_pem().size()));
  X509* root = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (root == nullptr) return "CA PEM does not parse";
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, root);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* p = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  if (ip) X509_VERIFY_PARAM_set1_ip_asc(p, host.c_str());
  else X509_VERIFY_PARAM_set1_host(p, host.c_str(), host.size());
  std::string why;
  if (X509_verify_cert(ctx) != 1) why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(root);
  return why;
}

struct San {
  std::vector<std::string> dns, ip;
};
San sans_of(X509* x) {
  San s;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      s.dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                         static_cast<std::size_t>(ASN1_STRING_length(g->d.dNSName)));
    } else if (g->type == GEN_IPADD) {
      s.ip.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.iPAddress)),
                        static_cast<std::size_t>(ASN1_STRING_length(g->d.iPAddress)));
    }
  }
  GENERAL_NAMES_free(names);
  return s;
}

bool critical(X509* x, int nid) {
  const int i = X509_get_ext_by_NID(x, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

TEST(EphemeralCa, CaCertificate) {
  auto ca = make_ca();
  ASSERT_TRUE(ca);
  X509* c = ca->cert();
  EXPECT_NE(X509_get_extension_flags(c) & EXFLAG_CA, 0u);
  EXPECT_TRUE(critical(c, NID_basic_constraints));
  EXPECT_NE(X509_get_key_usage(c) & KU_KEY_CERT_SIGN, 0u);
  EXPECT_EQ(X509_check_issued(c, c), X509_V_OK);   // self-signed
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof cn);
  EXPECT_EQ(std::string(cn).rfind("KeyZero ephemeral CA ", 0), 0u) << cn;
  // Valid now, for about a week, EC P-256.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(c)), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(c)), 0);
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(c), X509_get0_notAfter(c));
  EXPECT_EQ(days, 7);
  EVP_PKEY* k = X509_get0_pubkey(c);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(EVP_PKEY_get_bits(k), 256);
  EXPECT_TRUE(EVP_PKEY_is_a(k, "EC"));
  // Serial: random, about 128 bits.
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr);
  EXPECT_GT(BN_num_bits(serial), 100);
  BN_free(serial);
  EXPECT_NE(ca->cert_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(ca->cert_pem().find("PRIVATE"), std::string::npos);
  // Two runs, two different CAs.
  auto other = make_ca();
  EXPECT_NE(other->cert_pem(), ca->cert_pem());
}

TEST(EphemeralCa, DnsLeafChainsAndMatchesOnlyItsName) {
  auto ca = make_ca();
  ASSERT_TRUE(ca);
  auto leaf = ca->leaf_for("API.Example.com.");
  ASSERT_TRUE(leaf.ok()) << leaf.error().message;
  X509* x = (*leaf)->cert;
  EXPECT_EQ(verify(*ca, x, "api.example.com", false), "");
  EXPECT_NE(verify(*ca, x, "other.example.com", false), "");
  EXPECT_NE(verify(*ca, x, "127.0.0.1", true), "");
  const San s = sans_of(x);
  EXPECT_EQ(s.dns, std::vector<std::string>{"api.example.com"});
  EXPECT_TRUE(s.ip.empty());
  EXPECT_EQ(X509_get_extension_flags(x) & EXFLAG_CA, 0u);
  EXPECT_NE(X509_get_extended_key_usage(x) & XKU_SSL_SERVER, 0u);
  EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(x), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(ca->cert())), 0);
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
  EXPECT_EQ(days * 86400 + secs, 25 * 3600);   // an hour back, a day ahead
  // The key pairs with the certificate.
  EXPECT_EQ(X509_check_private_key(x, (*leaf)->key), 1);
}

TEST(EphemeralCa, IpLeaves) {
  auto ca = make_ca();
  ASSERT_TRUE(ca);
  auto v4 = ca->leaf_for("127.0.0.1");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(verify(*ca, (*v4)->cert, "127.0.0.1", true), "");
  EXPECT_NE(verify(*ca, (*v4)->cert, "127.0.0.2", true), "");
  EXPECT_NE(verify(*ca, (*v4)->cert, "127.0.0.1", false), "");   // not a dNSName
  San s = sans_of((*v4)->cert);
  EXPECT_TRUE(s.dns.empty());
  ASSERT_EQ(s.ip.size(), 1u);
  EXPECT_EQ(s.ip[0], std::string("\x7f\x00\x00\x01", 4));

  auto v6 = ca->leaf_for("[::1]");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(verify(*ca, (*v6)->cert, "::1", true), "");
  s = sans_of((*v6)->cert);
  ASSERT_EQ(s.ip.size(), 1u);
  EXPECT_EQ(s.ip[0].size(), 16u);
  // "::1" and "[::1]" and "0:0::1" are one host.
  auto again = ca->leaf_for("0:0::1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), v6->get());
}

TEST(EphemeralCa, RefusesWhatIsNoHost) {
  auto ca = make_ca();
  ASSERT_TRUE(ca);
  EXPECT_FALSE(ca->leaf_for("").ok());
  EXPECT_FALSE(ca->leaf_for("a b").ok());
  EXPECT_FALSE(ca->leaf_for("x,DNS:evil.example").ok());
  EXPECT_FALSE(ca->leaf_for(std::string(300, 'a')).ok());
}

TEST(EphemeralCa, CachedOneKeyThreadSafe) {
  auto ca = make_ca();
  ASSERT_TRUE(ca);
  auto a = ca->leaf_for("a.example");
  auto a2 = ca->leaf_for("A.EXAMPLE");
  auto b = ca->leaf_for("b.example");
  ASSERT_TRUE(a.ok() && a2.ok() && b.ok());
  EXPECT_EQ(a->get(), a2->get());
  EXPECT_NE(a->get(), b->get());
  EXPECT_EQ(EVP_PKEY_eq((*a)->key, (*b)->key), 1);   // one leaf key per run
  // Different serials.
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber((*a)->cert), X509_get0_serialNumber((*b)->cert)), 0);

  std::vector<std::thread> threads;
  std::vector<std::vector<const LeafCert*>> seen(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto l = ca->leaf_for("host" + std::to_string(i % 10) + ".example");
        seen[t].push_back(l.ok() ? l->get() : nullptr);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 1; t < 8; ++t) EXPECT_EQ(seen[t], seen[0]);
  std::set<const LeafCert*> distinct(seen[0].begin(), seen[0].end());
  EXPECT_EQ(distinct.size(), 10u);
  EXPECT_EQ(distinct.count(nullptr), 0u);
}

}  // namespace
}  // namespace kz
