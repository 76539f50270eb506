// The provider interface. One implementation per file in providers/src; the registry
// (registry.h) maps the names used in .keyzero.toml to factories.
//
// Contract for implementations:
//  * resolve() is called from a worker thread, possibly concurrently for different refs
//    of the same provider; it must be thread-safe and must return by `deadline`
//    (every blocking call gets a timeout derived from it).
//  * Error messages name the secret's provider and ref, never a value or a credential.
//  * Intermediate buffers that held a value are wiped (kz::ScrubbedString, wipe_json).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kz/uri_encode.h"
#include "kz/result.h"
#include "kz/secret.h"

namespace kz {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
};
std::string format_pos(const SourcePos& p);  // "file:line:column"

// One [providers.NAME] key after validation against the provider's schema.
struct SettingValue {
  std::string text;        // strings as-is; integers/bools/floats in their TOML spelling
  SourcePos pos;
};
using ProviderSettings = std::map<std::string, SettingValue>;

enum class SettingType { String, Integer, Boolean, Path };

struct SettingSpec {
  std::string key;
  SettingType type;
  std::string help;
};

// What a provider is asked to resolve.
struct SecretRef {
  std::string name;   // the variable name in [secrets]
  std::string ref;    // provider-specific reference (op://..., secret/data/..., prod/db#password)
  SourcePos pos;      // where the secret was declared
};

// What a provider says about the lifetime of a value it returned (rotation, docs/rotation
// in the README): nothing, by default. Never secret: a lease id names a lease, it does not
// grant one.
struct ValueLease {
  std::chrono::seconds duration{0};   // Vault lease_duration; 0: the provider reported none
  bool renewable = false;             // Vault: the lease may be renewed
  std::string lease_id;               // Vault: dynamic secrets' lease id ("" for KV)
  std::string version;                // the value's version: KV v2 metadata.version, AWS VersionId
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) = 0;
  // The same, and what the provider reports of the value's lease and version (a
  // provider that reports nothing leaves `lease` as it is).
  virtual Result<SecretValue> resolve_leased(const SecretRef& ref, Deadline deadline, ValueLease& lease) {
    (void)lease;
    return resolve(ref, deadline);
  }
  // True when resolve() only reads this process's memory (the env provider): it cannot
  // block, so the resolver calls it on its own thread instead of starting one for it.
  virtual bool in_process() const { return false; }
};

// Environment access goes through this so tests (and the PDP later) can supply their own.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual const char* get(const std::string& name) const = 0;
};
class ProcessEnvironment final : public Environment {
 public:
  const char* get(const std::string& name) const override;
};

struct ProviderContext {
  const Environment* env = nullptr;   // never null when passed to a factory
  std::string home;                   // $HOME, for ~ expansion and vendor dot-files
  std::string config_dir;             // directory of .keyzero.toml: relative paths start here
};

using ProviderFactory =
    Result<std::unique_ptr<Provider>> (*)(const ProviderSettings&, const ProviderContext&);

struct ProviderSpec {
  std::string name;                    // "vault", "aws-sm", ...
  std::vector<SettingSpec> settings;   // keys accepted in [providers.NAME] (besides `timeout`)
  ProviderFactory make;
};

// Helpers shared by implementations.
std::string expand_home(const std::string& path, const std::string& home);
const SettingValue* find_setting(const ProviderSettings& s, const std::string& key);
// Setting if present, else the first set environment variable among `env_names`, else "".
std::string setting_or_env(const ProviderSettings& s, const std::string& key,
                           const Environment& env, std::initializer_list<const char*> env_names);
// Milliseconds left until the deadline (at least 1).
long remaining_ms(Deadline deadline);

// uri_encode: kz/uri_encode.h.

// For error messages built from a server's or a tool's text:
// replace every occurrence of `credential` (≥ 4 bytes) with "[redacted]";
void redact(std::string& s, std::string_view credential);
// keep at most 300 printable characters ("..." when cut);
std::string sanitize_message(const std::string& m);
// the first non-empty line of `s`, sanitized.
std::string first_line(const std::string& s);

}  // namespace kz
