// The child's environment: inherited (or a clean minimum), plain variables from
// --env-file, and the secrets, built in locked memory that is wiped after the fork.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kz/providers/provider.h"
#include "kz/result.h"
#include "kz/secret.h"
#include "secrets/resolved_secret.h"

namespace kz {

struct EnvVar {
  std::string name, value;
  SourcePos pos;   // env-file:line
};

// KEY=VALUE lines; `#` comments, blank lines, an optional `export ` prefix,
// "double quotes" with \n \t \" \\ escapes, 'single quotes' taken literally.
Result<std::vector<EnvVar>> parse_env_file(const std::string& path);

struct ChildEnvOptions {
  bool clean = false;                 // start from PATH, HOME, USER, LANG, TERM only
  std::vector<std::string> keep;      // with clean: also keep these
  std::vector<EnvVar> plain;          // from --env-file (later files win)
  std::vector<std::string> drop;      // inherited variables removed (unless in `keep`)
};

// Inherited variables the child must not get: the credentials of the providers this run
// uses (VAULT_TOKEN, AWS keys, OP_* tokens) and the source variables of `env` secrets.
// Names ending in '*' are prefixes (OP_SESSION_*).
std::vector<std::string> provider_credential_vars(const std::vector<std::string>& providers_used);

// Variables kept by --clean-env besides --keep-env.
const std::vector<std::string>& clean_env_base();

class EnvBlock {
 public:
  char** envp() { return ptrs_.data(); }
  std::size_t size() const { return ptrs_.size() - 1; }
  // Lookup for tests and diagnostics ("NAME" → value or nullptr).
  const char* get(const std::string& name) const;
  void wipe();   // clear the values (called in the parent right after fork)

 private:
  friend EnvBlock build_child_env(char** parent, const ChildEnvOptions&,
                                  const std::vector<ResolvedSecret>&);
  SecretValue storage_;
  std::vector<char*> ptrs_;
};

// Secrets replace inherited and plain variables of the same name (the caller has
// already rejected or resolved clashes with plain variables).
EnvBlock build_child_env(char** parent, const ChildEnvOptions& opts,
                         const std::vector<ResolvedSecret>& secrets);

}  // namespace kz
