// The [audit] table of .keyzero.toml: where the log goes and its sinks. Declared here,
// below config/, so that the audit room does not depend on the config parser.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "kz/providers/provider.h"   // SourcePos

namespace kz {

struct AuditConfig {
  std::string path;   // empty: default_audit_path()
  // Sinks beside the file (audit_sinks.h): copies of every record, best effort.
  bool syslog = false;          // syslog(3), ident "kz", LOG_AUTHPRIV (journald reads it)
  std::string http_url;         // POST JSON arrays of records here (https://, or http:// to loopback)
  std::string http_ca_file;     // extra trust anchors for http_url (config-relative)
  std::string http_token_env;   // name of the variable holding a bearer token (never the token)
  std::size_t http_batch = 100;                 // records per POST at most
  std::chrono::milliseconds http_flush{1000};   // a partial batch waits at most this long
  std::size_t queue_max = 10000;                // per sink; beyond it records are dropped from the sink
  SourcePos http_url_pos, http_token_env_pos;
};

}  // namespace kz
