// Makes the run's CA trusted by redirected programs, through the variables their TLS
// stacks read: SSL_CERT_FILE (OpenSSL, Go), NODE_EXTRA_CA_CERTS (node),
// REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE (python requests, curl),
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (grpc core, grpc-js), and a Java trust store
// through JAVA_TOOL_OPTIONS. Each bundle is what the variable pointed at in kz's own
// environment (else the system bundle) plus the run's CA, so a program keeps trusting
// what it trusted before. Files live in a private directory removed when the run ends.
#pragma once

#include <string>
#include <vector>

#include "kz/result.h"
#include "run/child_env.h"

namespace kz {

class TrustBundles {
 public:
  // `dir`: an existing private (0700) directory owned by the run. `parent_env`: kz's
  // environment (for the inherited variables). Writes the files (0600 PEM, 0600 PKCS#12).
  static Result<TrustBundles> write(const std::string& dir, const std::string& ca_pem, char** parent_env);
  // The variables to set in the child (replacing inherited ones of the same name).
  const std::vector<EnvVar>& vars() const { return vars_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<EnvVar> vars_;
  std::vector<std::string> files_;
};

// The system CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt; else OpenSSL's
// default cert file).
std::string system_ca_bundle_path();

}  // namespace kz
