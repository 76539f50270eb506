// Minimal HTTPS client over libcurl for providers (and later the MCP fetch tool).
// Response bodies are held in ScrubbedString: they usually contain a secret.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "kz/providers/provider.h"
#include "kz/wipe.h"

namespace kz {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // may carry credentials
  std::string body;
  std::string ca_file;      // empty: system trust store
  std::string ca_pem;       // set: these PEM bytes instead of ca_file (CURLOPT_CAINFO_BLOB)
  Deadline deadline;
  // When set, the transfer is abandoned soon (libcurl checks about once a second) after
  // it becomes true; the result is then ErrorKind::Timeout. The audit sinks use it to
  // bound how long the end of a run waits for a collector.
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;   // lower-cased names
  ScrubbedString body;
};

// Transport errors map to ErrorKind::Tls (verification/handshake), Timeout, Network.
// `what` names the operation for messages, e.g. "vault: GET /v1/secret/data/x".
// Credentials in `req` are wiped after the call.
Result<HttpResponse> http_send(HttpRequest req, const std::string& what);

}  // namespace kz
