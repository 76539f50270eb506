#include "proxy/trust_bundles.h"

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "test_support.h"

namespace kz {
namespace {

using test::contains;
using test::read_file;
using test::TempDir;

constexpr const char* kTrustedKeyUsageOid = "2.16.840.1.113894.746875.1.1";

// An environment block for write()'s parent_env.
class Env {
 public:
  explicit Env(std::vector<std::string> kv) : kv_(std::move(kv)) {
    for (auto& s : kv_) ptrs_.push_back(s.data());
    ptrs_.push_back(nullptr);
  }
  char** get() { return ptrs_.data(); }
 private:
  std::vector<std::string> kv_;
  std::vector<char*> ptrs_;
};

std::map<std::string, std::string> vars_of(const TrustBundles& tb) {
  std::map<std::string, std::string> m;
  for (const auto& v : tb.vars()) m[v.name] = v.value;
  return m;
}

std::string run_ca_pem() { return read_file(test::test_ca().ca); }
std::string other_ca_pem() { return read_file(test::test_ca().rogue_cert); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

struct X509Free { void operator()(X509* p) const { X509_free(p); } };
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr parse_one(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::size_t count_pem_certs(const std::string& pem) {
  std::size_t n = 0;
  for (std::size_t pos = 0; (pos = pem.find("-----BEGIN CERTIFICATE-----", pos)) != std::string::npos; ++pos) ++n;
  return n;
}

TEST(TrustBundles, SystemBundlePlusRunCaAndSharedFiles) {
  TempDir dir;
  Env env({"PATH=/usr/bin:/bin"});
  const std::string ca = run_ca_pem();
  auto tb = TrustBundles::write(dir.path(), ca, env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  auto vars = vars_of(*tb);
  ASSERT_EQ(vars.size(), 6u);

  const std::string system = read_file(system_ca_bundle_path());
  ASSERT_FALSE(system.empty()) << "no system CA bundle at " << system_ca_bundle_path();
  for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"}) {
    SCOPED_TRACE(name);
    const std::string got = read_file(vars[name]);
    EXPECT_EQ(got.compare(0, system.size(), system), 0) << "the bundle starts with the system bundle";
    EXPECT_TRUE(ends_with(got, ca)) << "and ends with the run CA";
    EXPECT_EQ(count_pem_certs(got), count_pem_certs(system) + 1);
  }
  // Identical contents: one file for the three.
  EXPECT_EQ(vars["SSL_CERT_FILE"], vars["REQUESTS_CA_BUNDLE"]);
  EXPECT_EQ(vars["SSL_CERT_FILE"], vars["CURL_CA_BUNDLE"]);
  EXPECT_EQ(vars["SSL_CERT_FILE"], vars["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"]);
  // node adds NODE_EXTRA_CA_CERTS to its own roots: the run CA alone.
  EXPECT_EQ(read_file(vars["NODE_EXTRA_CA_CERTS"]), ca);
  EXPECT_NE(vars["NODE_EXTRA_CA_CERTS"], vars["SSL_CERT_FILE"]);

  // Three files (shared PEM bundle, node's, the Java store), all 0600 regular files in dir.
  ASSERT_EQ(tb->files().size(), 3u);
  std::set<std::string> files(tb->files().begin(), tb->files().end());
  EXPECT_EQ(files.size(), 3u);
  for (const auto& f : tb->files()) {
    SCOPED_TRACE(f);
    EXPECT_EQ(std::filesystem::path(f).parent_path(), std::filesystem::path(dir.path()));
    struct stat st {};
    ASSERT_EQ(::lstat(f.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }
  for (const auto& [name, value] : vars) {
    if (name != "JAVA_TOOL_OPTIONS") {
      EXPECT_TRUE(files.count(value)) << name;
    }
  }
}

TEST(TrustBundles, ModeIsExactly0600WhateverTheUmask) {
  TempDir dir;
  Env env({});
  mode_t old = ::umask(0277);
  auto tb = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ::umask(old);
  ASSERT_TRUE(tb) << tb.error().message;
  for (const auto& f : tb->files()) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << f;
  }
}

TEST(TrustBundles, InheritedFilesComeFirstAndShareWhenEqual) {
  TempDir dir, inherited_dir;
  const std::string custom = inherited_dir.write("custom.pem", other_ca_pem(), 0644);
  Env env({"SSL_CERT_FILE=" + custom, "NODE_EXTRA_CA_CERTS=" + custom,
           "REQUESTS_CA_BUNDLE=" + inherited_dir.file("missing.pem")});
  const std::string ca = run_ca_pem();
  auto tb = TrustBundles::write(dir.path(), ca, env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  auto vars = vars_of(*tb);

  const std::string expect_custom = other_ca_pem() + ca;
  EXPECT_EQ(read_file(vars["SSL_CERT_FILE"]), expect_custom);
  // node's bundle is the inherited file + CA too: the same contents, so the same file.
  EXPECT_EQ(vars["NODE_EXTRA_CA_CERTS"], vars["SSL_CERT_FILE"]);
  // An unreadable inherited bundle falls back to the system bundle, like an unset one.
  const std::string system_plus_ca = read_file(system_ca_bundle_path()) + ca;
  EXPECT_EQ(read_file(vars["REQUESTS_CA_BUNDLE"]), system_plus_ca);
  EXPECT_EQ(vars["REQUESTS_CA_BUNDLE"], vars["CURL_CA_BUNDLE"]);
  EXPECT_EQ(tb->files().size(), 3u);   // custom+CA, system+CA, Java store
  // The inherited file itself is untouched.
  EXPECT_EQ(read_file(custom), other_ca_pem());
}

TEST(TrustBundles, InheritedBundleWithoutFinalNewlineStillParses) {
  TempDir dir, inherited_dir;
  std::string pem = other_ca_pem();
  while (!pem.empty() && pem.back() == '\n') pem.pop_back();
  const std::string custom = inherited_dir.write("custom.pem", pem, 0644);
  Env env({"SSL_CERT_FILE=" + custom});
  auto tb = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  const std::string got = read_file(vars_of(*tb)["SSL_CERT_FILE"]);
  EXPECT_EQ(got, pem + "\n" + run_ca_pem());
}

TEST(TrustBundles, NonRegularInheritedFileIsIgnored) {
  TempDir dir;
  // /dev/zero would never end; a directory cannot be read: both fall back.
  Env env({"SSL_CERT_FILE=/dev/zero", "CURL_CA_BUNDLE=/", "NODE_EXTRA_CA_CERTS=/dev/zero"});
  auto tb = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  auto vars = vars_of(*tb);
  EXPECT_EQ(read_file(vars["SSL_CERT_FILE"]), read_file(system_ca_bundle_path()) + run_ca_pem());
  EXPECT_EQ(vars["CURL_CA_BUNDLE"], vars["SSL_CERT_FILE"]);
  EXPECT_EQ(read_file(vars["NODE_EXTRA_CA_CERTS"]), run_ca_pem());
}

TEST(TrustBundles, JavaToolOptionsKeepsTheInheritedValueFirst) {
  TempDir dir;
  Env env({"JAVA_TOOL_OPTIONS=-Xmx64m -Dfoo=bar"});
  auto tb = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  const std::string store = dir.file("java-trust-store.p12");
  EXPECT_EQ(vars_of(*tb)["JAVA_TOOL_OPTIONS"],
            "-Xmx64m -Dfoo=bar -Djavax.net.ssl.trustStore=" + store +
                " -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=changeit");

  TempDir dir2;
  Env none({"PATH=/bin"});
  auto tb2 = TrustBundles::write(dir2.path(), run_ca_pem(), none.get());
  ASSERT_TRUE(tb2) << tb2.error().message;
  EXPECT_EQ(vars_of(*tb2)["JAVA_TOOL_OPTIONS"].rfind("-Djavax.net.ssl.trustStore=" + dir2.file("java-trust-store.p12"), 0),
            0u);
}

TEST(TrustBundles, Pkcs12LoadsWithOpenSslAndEveryBagIsTrusted) {
  TempDir dir;
  Env env({});
  const std::string ca = run_ca_pem();
  auto tb = TrustBundles::write(dir.path(), ca, env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  const std::string der = read_file(dir.file("java-trust-store.p12"));
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<PKCS12, decltype(&PKCS12_free)> p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())),
                                                       PKCS12_free);
  ASSERT_TRUE(p12);
  EXPECT_EQ(PKCS12_verify_mac(p12.get(), "changeit", -1), 1);
  EXPECT_EQ(PKCS12_verify_mac(p12.get(), "wrong", -1), 0);

  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* cas = nullptr;
  ASSERT_EQ(PKCS12_parse(p12.get(), "changeit", &key, &cert, &cas), 1);
  EXPECT_EQ(key, nullptr);    // a trust store: no private key
  EXPECT_EQ(cert, nullptr);
  ASSERT_NE(cas, nullptr);
  const std::size_t system_count = count_pem_certs(read_file(system_ca_bundle_path()));
  EXPECT_EQ(static_cast<std::size_t>(sk_X509_num(cas)), system_count + 1);
  X509Ptr run_ca = parse_one(ca);
  ASSERT_TRUE(run_ca);
  bool found = false;
  for (int i = 0; i < sk_X509_num(cas); ++i) found = found || X509_cmp(sk_X509_value(cas, i), run_ca.get()) == 0;
  EXPECT_TRUE(found) << "the run CA is in the store";
  sk_X509_pop_free(cas, X509_free);
  X509_free(cert);
  EVP_PKEY_free(key);

  // Every certificate bag has a friendlyName and Oracle's trusted key usage attribute
  // (anyExtendedKeyUsage): what makes JDK's PKCS12 KeyStore load it as a trust anchor.
  std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> tku(OBJ_txt2obj(kTrustedKeyUsageOid, 1), ASN1_OBJECT_free);
  std::unique_ptr<ASN1_OBJECT, decltype(&ASN1_OBJECT_free)> any_eku(OBJ_txt2obj("2.5.29.37.0", 1), ASN1_OBJECT_free);
  STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12.get());
  ASSERT_NE(safes, nullptr);
  std::size_t bags_seen = 0;
  std::set<std::string> aliases;
  for (int i = 0; i < sk_PKCS7_num(safes); ++i) {
    PKCS7* p7 = sk_PKCS7_value(safes, i);
    ASSERT_EQ(OBJ_obj2nid(p7->type), NID_pkcs7_data) << "certificates are stored unencrypted";
    STACK_OF(PKCS12_SAFEBAG)* bags = PKCS12_unpack_p7data(p7);
    ASSERT_NE(bags, nullptr);
    for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); ++j) {
      const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, j);
      ++bags_seen;
      EXPECT_EQ(PKCS12_SAFEBAG_get_nid(bag), NID_certBag);
      const STACK_OF(X509_ATTRIBUTE)* attrs = PKCS12_SAFEBAG_get0_attrs(bag);
      int idx = X509at_get_attr_by_OBJ(attrs, tku.get(), -1);
      ASSERT_GE(idx, 0) << "bag " << j << " lacks the trusted key usage attribute";
      X509_ATTRIBUTE* attr = X509at_get_attr(attrs, idx);
      ASSERT_EQ(X509_ATTRIBUTE_count(attr), 1);
      ASN1_TYPE* v = X509_ATTRIBUTE_get0_type(attr, 0);
      ASSERT_EQ(v->type, V_ASN1_OBJECT);
      EXPECT_EQ(OBJ_cmp(v->value.object, any_eku.get()), 0);
      char* name = PKCS12_get_friendlyname(const_cast<PKCS12_SAFEBAG*>(bag));
      ASSERT_NE(name, nullptr);
      aliases.insert(name);
      OPENSSL_free(name);
    }
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  EXPECT_EQ(bags_seen, system_count + 1);
  EXPECT_EQ(aliases.size(), bags_seen) << "aliases are unique";
  EXPECT_TRUE(aliases.count("kz-run-ca"));
}

TEST(TrustBundles, KeytoolListsTheRunCaAsTrustedCertEntry) {
  bool have_keytool = test::run({"sh", "-c", "command -v keytool"}).status == 0;
  if (!have_keytool) GTEST_SKIP() << "SKIP: keytool is not on PATH (install a JDK to check the Java trust store)";
  TempDir dir;
  Env env({});
  auto tb = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  auto r = test::run({"keytool", "-list", "-keystore", dir.file("java-trust-store.p12"), "-storetype", "PKCS12",
                      "-storepass", "changeit"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  // "kz-run-ca, <date>, trustedCertEntry,"
  std::istringstream lines(r.out);
  std::string line;
  bool run_ca_trusted = false;
  std::size_t trusted = 0;
  while (std::getline(lines, line)) {
    if (contains(line, "trustedCertEntry")) ++trusted;
    if (line.rfind("kz-run-ca,", 0) == 0 && contains(line, "trustedCertEntry")) run_ca_trusted = true;
  }
  EXPECT_TRUE(run_ca_trusted) << r.out;
  EXPECT_EQ(trusted, count_pem_certs(read_file(system_ca_bundle_path())) + 1) << r.out;
}

TEST(TrustBundles, NeverOverwritesOrFollowsSymlinks) {
  TempDir dir, elsewhere;
  Env env({});
  auto first = TrustBundles::write(dir.path(), run_ca_pem(), env.get());
  ASSERT_TRUE(first) << first.error().message;
  const std::string before = read_file(first->files().front());
  auto second = TrustBundles::write(dir.path(), other_ca_pem(), env.get());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::Io);
  EXPECT_EQ(read_file(first->files().front()), before);

  // A symlink planted where the Java store goes: creation fails, the target is untouched,
  // and the PEM files written before the failure are removed again.
  TempDir dir2;
  const std::string target = elsewhere.write("target", "untouched", 0600);
  ASSERT_EQ(::symlink(target.c_str(), dir2.file("java-trust-store.p12").c_str()), 0);
  auto third = TrustBundles::write(dir2.path(), run_ca_pem(), env.get());
  ASSERT_FALSE(third);
  EXPECT_EQ(read_file(target), "untouched");
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir2.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u) << "only the planted symlink remains";
}

TEST(TrustBundles, RejectsABadRunCa) {
  TempDir dir;
  Env env({});
  auto none = TrustBundles::write(dir.path(), "not a certificate\n", env.get());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ErrorKind::Internal);
  auto two = TrustBundles::write(dir.path(), run_ca_pem() + other_ca_pem(), env.get());
  ASSERT_FALSE(two);
  EXPECT_TRUE(contains(two.error().message, "2 certificates")) << two.error().message;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(TrustBundles, OnlyTheCertificateOfTheRunCaIsWritten) {
  TempDir dir;
  Env env({});
  const std::string key = read_file(test::test_ca().dir + "/ca.key");
  ASSERT_TRUE(contains(key, "PRIVATE KEY"));
  // A caller that hands over the CA's key with its certificate must not spread the key.
  auto tb = TrustBundles::write(dir.path(), key + run_ca_pem(), env.get());
  ASSERT_TRUE(tb) << tb.error().message;
  for (const auto& f : tb->files()) EXPECT_FALSE(contains(read_file(f), "PRIVATE KEY")) << f;
  EXPECT_EQ(read_file(vars_of(*tb)["NODE_EXTRA_CA_CERTS"]), run_ca_pem());
}

TEST(TrustBundles, RejectsADirectoryJavaOptionsCannotCarry) {
  TempDir parent;
  const std::string spaced = parent.file("with space");
  ASSERT_EQ(::mkdir(spaced.c_str(), 0700), 0);
  Env env({});
  auto tb = TrustBundles::write(spaced, run_ca_pem(), env.get());
  ASSERT_FALSE(tb);
  EXPECT_TRUE(std::filesystem::is_empty(spaced)) << "nothing left behind";
}

// write() runs at every blind start: report what it costs (and fail only if absurd).
TEST(TrustBundles, WriteIsFast) {
  Env env({});
  const std::string ca = run_ca_pem();
  constexpr int kRounds = 20;
  double best_ms = 1e9, total_ms = 0;
  for (int i = 0; i < kRounds; ++i) {
    TempDir dir;
    auto t0 = std::chrono::steady_clock::now();
    auto tb = TrustBundles::write(dir.path(), ca, env.get());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(tb) << tb.error().message;
    best_ms = std::min(best_ms, ms);
    total_ms += ms;
  }
  std::printf("TrustBundles::write: best %.2f ms, mean %.2f ms over %d runs\n", best_ms, total_ms / kRounds, kRounds);
  RecordProperty("write_best_us", static_cast<int>(best_ms * 1000));
  EXPECT_LT(best_ms, 500.0);
}

}  // namespace
}  // namespace kz
