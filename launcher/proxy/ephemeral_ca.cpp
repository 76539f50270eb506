#include "proxy/ephemeral_ca.h"

#include <arpa/inet.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "core/openssl_ptr.h"

namespace kz {

namespace {

// RAII for every OpenSSL object this file creates.

constexpr long kHour = 3600;
constexpr long kCaLifetime = 7 * 24 * kHour;
constexpr long kLeafLifetime = 24 * kHour;
// A cached leaf is replaced well before it expires (runs may last longer than a day).
constexpr auto kLeafRefresh = std::chrono::hours(12);

Error ossl_error(const std::string& what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  std::string msg = "ephemeral CA: " + what;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += " (" + std::string(buf) + ")";
  }
  return make_error(ErrorKind::Tls, msg);
}

PkeyPtr new_p256_key() { return PkeyPtr(EVP_EC_gen("P-256")); }

// A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
bool set_random_serial(X509* x) {
  BnPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) return false;
  AsnIntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  return serial && X509_set_serialNumber(x, serial.get()) == 1;
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool set_validity(X509* x, long lifetime) {
  return X509_gmtime_adj(X509_getm_notBefore(x), -kHour) != nullptr &&
         X509_gmtime_adj(X509_getm_notAfter(x), lifetime) != nullptr;
}

std::string random_hex(std::size_t bytes) {
  unsigned char b[16];
  if (bytes > sizeof b || RAND_bytes(b, static_cast<int>(bytes)) != 1) return "0";
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i) {
    s += hex[b[i] >> 4];
    s += hex[b[i] & 15];
  }
  return s;
}

// The SAN of a leaf: iPAddress for an IPv4/IPv6 literal, else dNSName. Built as objects
// (not a config string), so no host name can inject further names.
bool add_san(X509* cert, const std::string& host, bool is_ip) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  GeneralNamePtr name(GENERAL_NAME_new());
  if (!names || !name) return false;
  if (is_ip) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
    if (ip == nullptr) return false;
    GENERAL_NAME_set0_value(name.get(), GEN_IPADD, ip);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr) return false;
    if (ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      return false;
    }
    GENERAL_NAME_set0_value(name.get(), GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), name.get()) == 0) return false;
  name.release();   // owned by names now
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

// Canonical form of a host for the leaf and the cache: IP literals without brackets
// (and in inet_ntop form), DNS names lower-case without a trailing dot. Empty: invalid.
std::string canonical_host(std::string_view host, bool* is_ip) {
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned char addr[16];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, h.c_str(), addr) == 1) {
    *is_ip = true;
    return inet_ntop(AF_INET, addr, text, sizeof text) != nullptr ? std::string(text) : std::string();
  }
  if (inet_pton(AF_INET6, h.c_str(), addr) == 1) {
    *is_ip = true;
    return inet_ntop(AF_INET6, addr, text, sizeof text) != nullptr ? std::string(text) : std::string();
  }
  *is_ip = false;
  if (!h.empty() && h.back() == '.') h.pop_back();
  if (h.empty() || h.size() > 253) return {};
  for (char& c : h) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '*';
    if (!ok) return {};
  }
  return h;
}

}  // namespace

LeafCert::~LeafCert() {
  X509_free(cert);
  EVP_PKEY_free(key);
}

EphemeralCa::~EphemeralCa() {
  X509_free(cert_);
  EVP_PKEY_free(leaf_key_);
  EVP_PKEY_free(ca_key_);
}

Result<std::unique_ptr<EphemeralCa>> EphemeralCa::create() {
  std::unique_ptr<EphemeralCa> ca(new EphemeralCa());
  PkeyPtr ca_key = new_p256_key();
  PkeyPtr leaf_key = new_p256_key();
  if (!ca_key || !leaf_key) return ossl_error("cannot generate an EC P-256 key");

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 || !set_random_serial(cert.get()) ||
      !set_validity(cert.get(), kCaLifetime) || X509_set_pubkey(cert.get(), ca_key.get()) != 1)
    return ossl_error("cannot build the CA certificate");
  // A random part in the name: two runs' CAs are never confused in a trust store.
  const std::string cn = "KeyZero ephemeral CA " + random_hex(8);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1)
    return ossl_error("cannot name the CA certificate");
  if (!add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash"))
    return ossl_error("cannot add the CA certificate's extensions");
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) return ossl_error("cannot sign the CA certificate");

  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) return ossl_error("cannot encode the CA certificate");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  ca->cert_pem_.assign(data, static_cast<std::size_t>(len));
  ca->ca_key_ = ca_key.release();
  ca->leaf_key_ = leaf_key.release();
  ca->cert_ = cert.release();
  return ca;
}

Result<std::shared_ptr<const LeafCert>> EphemeralCa::leaf_for(std::string_view host_in) {
  bool is_ip = false;
  const std::string host = canonical_host(host_in, &is_ip);
  if (host.empty()) return make_error(ErrorKind::Usage, "ephemeral CA: not a host name or IP literal");
  const auto now = std::chrono::steady_clock::now();
  // Minting is under the lock too: concurrent first connections to one host get one leaf,
  // and signing is cheap (one ECDSA signature).
  std::lock_guard lock(mu_);
  if (auto it = leaves_.find(host); it != leaves_.end() && now - it->second.made < kLeafRefresh)
    return it->second.leaf;

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 || !set_random_serial(cert.get()) ||
      !set_validity(cert.get(), kLeafLifetime) || X509_set_pubkey(cert.get(), leaf_key_) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_)) != 1)
    return ossl_error("cannot build a leaf certificate");
  // The CN is informational (clients match the SAN); a CN is at most 64 characters. An
  // IP leaf has none: name checks that fall back to the CN would match the address text.
  if (!is_ip && host.size() <= 64) {
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(host.c_str()),
                                   -1, -1, 0) != 1)
      return ossl_error("cannot name a leaf certificate");
  }
  if (!add_ext(cert.get(), cert_, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), cert_, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert.get(), cert_, NID_ext_key_usage, "serverAuth") ||
      !add_ext(cert.get(), cert_, NID_subject_key_identifier, "hash") ||
      !add_ext(cert.get(), cert_, NID_authority_key_identifier, "keyid:always") || !add_san(cert.get(), host, is_ip))
    return ossl_error("cannot add a leaf certificate's extensions");
  if (X509_sign(cert.get(), ca_key_, EVP_sha256()) <= 0) return ossl_error("cannot sign a leaf certificate");

  auto leaf = std::make_shared<LeafCert>();
  leaf->cert = cert.release();
  EVP_PKEY_up_ref(leaf_key_);
  leaf->key = leaf_key_;
  leaves_[host] = CachedLeaf{leaf, now};
  return std::shared_ptr<const LeafCert>(std::move(leaf));
}

}  // namespace kz
