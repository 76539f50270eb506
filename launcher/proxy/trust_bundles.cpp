#include "proxy/trust_bundles.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "core/openssl_ptr.h"
#include "core/unique_fd.h"

namespace kz {
namespace {

// The Java trust store's password. A trust store holds only public certificates; the
// password exists because the JDK's PKCS12 loader checks the MAC with it. "changeit" is
// the JDK's own well-known default, so nobody mistakes it for a secret.
constexpr const char* kJavaStorePassword = "changeit";
// Iterations of the PKCS#12 MAC key derivation. With a public password the MAC protects
// nothing, so this is kept low: it is paid at every blind start.
constexpr int kMacIterations = 2048;
// Oracle's "trusted key usage" bag attribute: the JDK's PKCS12 KeyStore loads a
// certificate bag as a trustedCertEntry only when it carries this attribute (without it
// the certificate is ignored, since PKCS#12 has no notion of "trusted"). Its value is
// the set of extended key usages the anchor is trusted for; anyExtendedKeyUsage = all.
constexpr const char* kOracleTrustedKeyUsageOid = "2.16.840.1.113894.746875.1.1";
constexpr const char* kAnyExtendedKeyUsageOid = "2.5.29.37.0";
// Alias of the run's CA in the Java trust store (the JDK lower-cases aliases).
constexpr const char* kRunCaAlias = "kz-run-ca";
// An inherited bundle larger than this is not read (SSL_CERT_FILE=/dev/zero must not
// hang or exhaust the launcher); the system bundle is about 200 KiB.
constexpr std::size_t kMaxBundleBytes = 16u << 20;

struct BagsFree {
  void operator()(STACK_OF(PKCS12_SAFEBAG)* p) const { sk_PKCS12_SAFEBAG_pop_free(p, PKCS12_SAFEBAG_free); }
};
struct SafesFree {
  void operator()(STACK_OF(PKCS7)* p) const { sk_PKCS7_pop_free(p, PKCS7_free); }
};
struct Pkcs12Free { void operator()(PKCS12* p) const { PKCS12_free(p); } };
struct SafeBagFree { void operator()(PKCS12_SAFEBAG* p) const { PKCS12_SAFEBAG_free(p); } };
struct Asn1TypeFree { void operator()(ASN1_TYPE* p) const { ASN1_TYPE_free(p); } };
struct OpenSslFree { void operator()(void* p) const { OPENSSL_free(p); } };
using BagsPtr = std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), BagsFree>;
using SafesPtr = std::unique_ptr<STACK_OF(PKCS7), SafesFree>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, Pkcs12Free>;
using SafeBagPtr = std::unique_ptr<PKCS12_SAFEBAG, SafeBagFree>;
using Asn1TypePtr = std::unique_ptr<ASN1_TYPE, Asn1TypeFree>;

// The first OpenSSL error, for messages (the queue is cleared so later calls start clean).
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

Error internal(std::string what) { return make_error(ErrorKind::Internal, "trust bundles: " + std::move(what)); }

const char* env_lookup(char** env, std::string_view name) {
  if (env == nullptr) return nullptr;
  for (char** e = env; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.size() > name.size() && kv[name.size()] == '=' && kv.substr(0, name.size()) == name)
      return *e + name.size() + 1;
  }
  return nullptr;
}

// A regular file's contents, or nullopt when it cannot be read (missing, not a regular
// file, too large). Never an error: an unreadable inherited bundle is replaced by the
// system bundle, as the variable's owner would get no trust from it either.
// O_NONBLOCK so that opening a FIFO does not wait for a writer (it is then rejected as
// not a regular file).
std::optional<std::string> read_regular_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::size_t>(st.st_size) > kMaxBundleBytes)
    return std::nullopt;
  std::string out;
  out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > kMaxBundleBytes) return std::nullopt;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// The DER of every certificate in a PEM text, in order; other PEM blocks (CRLs, keys)
// are skipped. The certificates are deliberately not parsed into X509 objects: OpenSSL
// 3.0 decodes each public key through its provider framework, which made parsing the
// ~150 system anchors cost hundreds of milliseconds at every blind start. The outer DER
// element is checked, and a block that cannot be read is an error rather than the end
// of the bundle: a half-read bundle would silently drop anchors.
Result<std::vector<std::string>> cert_ders(std::string_view pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return internal("BIO_new_mem_buf: " + openssl_error());
  std::vector<std::string> ders;
  ERR_clear_error();
  for (std::size_t block = 1;; ++block) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    int r = PEM_read_bio(bio.get(), &name, &header, &data, &len);
    std::unique_ptr<char, OpenSslFree> name_guard(name), header_guard(header);
    std::unique_ptr<unsigned char, OpenSslFree> data_guard(data);
    if (r != 1) {
      unsigned long e = ERR_peek_last_error();
      // "no start line" at the end is the normal way the loop ends.
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;
      }
      return internal("cannot read PEM block " + std::to_string(block) + " of " + what + ": " + openssl_error());
    }
    std::string_view kind(name);
    if (kind != PEM_STRING_X509 && kind != PEM_STRING_X509_OLD && kind != PEM_STRING_X509_TRUSTED) continue;
    // The certificate is the block's first DER element (a TRUSTED CERTIFICATE block has
    // OpenSSL's trust settings after it): a definite-length universal SEQUENCE.
    const unsigned char* p = data;
    long body = 0;
    int tag = 0, cls = 0;
    int flags = ASN1_get_object(&p, &body, &tag, &cls, len);
    if (flags != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL) {
      ERR_clear_error();
      return internal("PEM block " + std::to_string(block) + " of " + what + " is not a DER certificate");
    }
    ders.emplace_back(reinterpret_cast<const char*>(data), static_cast<std::size_t>(p - data) + static_cast<std::size_t>(body));
  }
  return ders;
}

// Removes the files written so far unless the whole set was written: a run must not
// start with half its trust configuration, and must not leave strays behind.
class CreatedFiles {
 public:
  ~CreatedFiles() {
    if (committed_) return;
    for (const auto& p : paths_) ::unlink(p.c_str());
  }
  void add(std::string p) { paths_.push_back(std::move(p)); }
  std::vector<std::string> commit() { committed_ = true; return std::move(paths_); }
 private:
  std::vector<std::string> paths_;
  bool committed_ = false;
};

// O_EXCL|O_NOFOLLOW: never write through a planted symlink or into a file someone else
// prepared. fchmod because the umask may have narrowed 0600 (we want exactly 0600).
Status write_new_file(const std::string& path, std::string_view data, CreatedFiles& created) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return make_error(ErrorKind::Io, "trust bundles: cannot create " + path + ": " + std::strerror(errno));
  created.add(path);
  if (::fchmod(fd.get(), 0600) != 0)
    return make_error(ErrorKind::Io, "trust bundles: chmod " + path + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(ErrorKind::Io, "trust bundles: write " + path + ": " + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
  if (::close(fd.release()) != 0)
    return make_error(ErrorKind::Io, "trust bundles: close " + path + ": " + std::strerror(errno));
  return ok_status();
}

// `base` followed by `ca_pem`, with a line break between them when `base` lacks one
// (a PEM block glued to the previous END line would not parse).
std::string concat_pem(std::string_view base, std::string_view ca_pem) {
  std::string out;
  out.reserve(base.size() + ca_pem.size() + 2);
  out.append(base);
  if (!out.empty() && out.back() != '\n') out.push_back('\n');
  out.append(ca_pem);
  if (!out.empty() && out.back() != '\n') out.push_back('\n');
  return out;
}

// One certificate bag: the certificate (DER, as a certBag's x509Certificate), its alias
// (friendlyName) and the Oracle trusted key usage attribute that makes the JDK treat it
// as a trust anchor. PKCS12_add_cert would need a parsed X509 (see cert_ders); packing
// the DER as an ASN1_ANY of type SEQUENCE writes exactly those bytes, as it would.
Status add_trusted_bag(STACK_OF(PKCS12_SAFEBAG)* bags, std::string_view der, const std::string& alias,
                       const ASN1_OBJECT* any_eku) {
  Asn1TypePtr any(ASN1_TYPE_new());
  ASN1_STRING* seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
  if (!any || seq == nullptr || ASN1_STRING_set(seq, der.data(), static_cast<int>(der.size())) != 1) {
    ASN1_STRING_free(seq);
    return internal("out of memory");
  }
  ASN1_TYPE_set(any.get(), V_ASN1_SEQUENCE, seq);   // `any` owns `seq` from here
  SafeBagPtr bag(PKCS12_item_pack_safebag(any.get(), ASN1_ITEM_rptr(ASN1_ANY), NID_x509Certificate, NID_certBag));
  if (!bag) return internal("packing a certificate bag: " + openssl_error());
  if (PKCS12_add_friendlyname_utf8(bag.get(), alias.c_str(), -1) != 1)
    return internal("PKCS12_add_friendlyname: " + openssl_error());
  // len -1 with V_ASN1_OBJECT: the value is an ASN1_OBJECT*, copied into the attribute.
  if (PKCS12_add1_attr_by_txt(bag.get(), kOracleTrustedKeyUsageOid, V_ASN1_OBJECT,
                              reinterpret_cast<const unsigned char*>(any_eku), -1) != 1)
    return internal("adding the trusted key usage attribute: " + openssl_error());
  if (sk_PKCS12_SAFEBAG_push(bags, bag.get()) <= 0) return internal("out of memory");
  bag.release();   // owned by `bags`
  return ok_status();
}

// A PKCS#12 trust store (DER) holding the run CA and the system anchors: one unencrypted
// safe of certificate bags (encrypting public certificates would only cost start-up
// time) and a SHA-256 MAC.
Result<std::string> make_java_trust_store(const std::vector<std::string>& system_certs, std::string_view run_ca) {
  AsnObjectPtr any_eku(OBJ_txt2obj(kAnyExtendedKeyUsageOid, 1));
  if (!any_eku) return internal("OBJ_txt2obj: " + openssl_error());

  // Both stacks are made here (not lazily by PKCS12_add_safe) so that they are owned
  // from the start, whatever fails later.
  BagsPtr bags(sk_PKCS12_SAFEBAG_new_null());
  SafesPtr safes(sk_PKCS7_new_null());
  if (!bags || !safes) return internal("out of memory");
  if (Status s = add_trusted_bag(bags.get(), run_ca, kRunCaAlias, any_eku.get()); !s) return s.take_error();
  // Unique aliases (the JDK keys entries by lower-cased alias; duplicates would replace
  // one another). Numbered rather than named after subjects, which repeat and vary.
  for (std::size_t i = 0; i < system_certs.size(); ++i) {
    Status s = add_trusted_bag(bags.get(), system_certs[i], "system-" + std::to_string(i + 1), any_eku.get());
    if (!s) return s.take_error();
  }

  STACK_OF(PKCS7)* safes_raw = safes.get();
  // nid_safe -1: an unencrypted (pkcs7-data) safe; the bags are copied into it.
  if (PKCS12_add_safe(&safes_raw, bags.get(), -1, 0, nullptr) != 1)
    return internal("PKCS12_add_safe: " + openssl_error());
  Pkcs12Ptr p12(PKCS12_add_safes(safes.get(), 0));
  if (!p12) return internal("PKCS12_add_safes: " + openssl_error());
  // JDK 12+ verifies HmacPBESHA256 MACs (JDK 17 writes them itself); NULL salt = random.
  if (PKCS12_set_mac(p12.get(), kJavaStorePassword, -1, nullptr, 0, kMacIterations, EVP_sha256()) != 1)
    return internal("PKCS12_set_mac: " + openssl_error());

  int len = i2d_PKCS12(p12.get(), nullptr);
  if (len <= 0) return internal("i2d_PKCS12: " + openssl_error());
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PKCS12(p12.get(), &p) != len) return internal("i2d_PKCS12: " + openssl_error());
  return der;
}

// JAVA_TOOL_OPTIONS is split on white space by the JVM; a path with spaces or quotes
// would be cut into pieces and Java would silently keep its default trust.
bool safe_for_java_options(std::string_view path) {
  for (char c : path)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\'' || c == '"' || c == '\\') return false;
  return true;
}

}  // namespace

std::string system_ca_bundle_path() {
  static constexpr const char* kDebianBundle = "/etc/ssl/certs/ca-certificates.crt";
  if (::access(kDebianBundle, R_OK) == 0) return kDebianBundle;
  return X509_get_default_cert_file();
}

Result<TrustBundles> TrustBundles::write(const std::string& dir, const std::string& ca_pem, char** parent_env) {
  const std::string store_path = dir + "/java-trust-store.p12";
  if (!safe_for_java_options(store_path))
    return internal("the run directory " + dir + " has characters JAVA_TOOL_OPTIONS cannot carry");

  // The run CA must be exactly one certificate that parses: it is the one thing every
  // file exists to carry, and a broken one would fail every redirected handshake with a
  // confusing error. What is written is the certificate re-encoded from its DER, never
  // `ca_pem` itself, so nothing else that text might hold (a key block) reaches a file.
  auto ca_certs = cert_ders(ca_pem, "the run CA");
  if (!ca_certs) return ca_certs.take_error();
  if (ca_certs->size() != 1)
    return internal("the run CA PEM holds " + std::to_string(ca_certs->size()) + " certificates, expected 1");
  std::string ca_cert_pem;
  {
    const auto* p = reinterpret_cast<const unsigned char*>(ca_certs->front().data());
    X509Ptr parsed(d2i_X509(nullptr, &p, static_cast<long>(ca_certs->front().size())));
    if (!parsed) return internal("the run CA certificate does not parse: " + openssl_error());
    BioPtr mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_X509(mem.get(), parsed.get()) != 1) return internal("PEM_write_bio_X509: " + openssl_error());
    char* data = nullptr;
    long n = BIO_get_mem_data(mem.get(), &data);
    ca_cert_pem.assign(data, static_cast<std::size_t>(n));
  }

  // The system bundle is read once and shared by every variable that falls back to it.
  // A machine without one (a minimal container) still gets the run CA: redirected
  // programs then trust exactly what they trusted before, plus the run.
  const std::string system_path = system_ca_bundle_path();
  const std::string system_pem = read_regular_file(system_path).value_or(std::string());

  TrustBundles tb;
  CreatedFiles created;
  std::map<std::string, std::string> path_by_content;   // identical bundles share a file

  struct PemVar {
    const char* name;
    bool adds_to_builtin;   // node: NODE_EXTRA_CA_CERTS is added to its own roots
    const char* file;
  };
  static constexpr PemVar kPemVars[] = {
      {"SSL_CERT_FILE", false, "ssl-cert-file.pem"},
      {"NODE_EXTRA_CA_CERTS", true, "node-extra-ca-certs.pem"},
      {"REQUESTS_CA_BUNDLE", false, "requests-ca-bundle.pem"},
      {"CURL_CA_BUNDLE", false, "curl-ca-bundle.pem"},
      // gRPC: grpc core (python grpcio) and grpc-js read their roots from here, not from
      // the TLS library's store (grpc-js ignores NODE_EXTRA_CA_CERTS).
      {"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", false, "grpc-roots.pem"},
  };
  for (const PemVar& v : kPemVars) {
    std::optional<std::string> inherited;
    if (const char* p = env_lookup(parent_env, v.name); p != nullptr && *p != '\0') inherited = read_regular_file(p);
    std::string content = concat_pem(inherited ? *inherited : (v.adds_to_builtin ? std::string() : system_pem), ca_cert_pem);
    auto it = path_by_content.find(content);
    if (it == path_by_content.end()) {
      std::string path = dir + "/" + v.file;
      if (Status s = write_new_file(path, content, created); !s) return s.take_error();
      it = path_by_content.emplace(std::move(content), std::move(path)).first;
    }
    tb.vars_.push_back(EnvVar{v.name, it->second, {}});
  }

  // Java: the system anchors plus the run CA (Debian's JDK cacerts is made from the same
  // system bundle, so Java keeps trusting what it trusted before).
  auto system_certs = cert_ders(system_pem, system_path);
  if (!system_certs) return system_certs.take_error();
  auto store = make_java_trust_store(*system_certs, ca_certs->front());
  if (!store) return store.take_error();
  if (Status s = write_new_file(store_path, *store, created); !s) return s.take_error();

  // The inherited options come first so that the program's own settings still apply; ours
  // come last because for repeated -D properties the JVM keeps the last one.
  std::string java_opts;
  if (const char* p = env_lookup(parent_env, "JAVA_TOOL_OPTIONS"); p != nullptr && *p != '\0') {
    java_opts = p;
    java_opts.push_back(' ');
  }
  java_opts += "-Djavax.net.ssl.trustStore=" + store_path +
               " -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=" + kJavaStorePassword;
  tb.vars_.push_back(EnvVar{"JAVA_TOOL_OPTIONS", std::move(java_opts), {}});

  tb.files_ = created.commit();
  return tb;
}

}  // namespace kz
