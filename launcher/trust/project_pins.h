// What `kz trust` pins for a project: for each secret of its .keyzero.toml, where the
// value may go (hosts, methods, paths, as blind mode will enforce them) and where it is
// read from (provider, ref); and the extra trust anchors of [blind] ca_file (path and
// SHA-256 of its contents). The agent can edit the workspace, config and CA file
// included; the pins live outside it (trust_store.h), so a widening it makes is seen.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.h"
#include "kz/result.h"

namespace kz {

struct SecretPin {
  std::string source;                  // "provider:ref" (an exec ref by its SHA-256 only)
  std::vector<std::string> hosts;      // its own, else the catalogue's (sorted, unique)
  std::vector<std::string> methods;    // empty: any
  std::vector<std::string> paths;      // empty: any
  // approve = ... in one canonical line ("" none; "every ttl=300"...): dropping or
  // loosening it lets a value go without a person, so any change but adding one widens.
  std::string approve;
  bool operator==(const SecretPin&) const = default;
};

struct ProjectPins {
  std::string config;                  // the config's absolute path (the store's key)
  std::string config_sha256;           // of the file as read (informational: not compared)
  std::map<std::string, SecretPin> secrets;
  std::string ca_file;                 // absolute path; "" when none
  std::string ca_sha256;               // of its contents; "unreadable" when it cannot be read
};

// The pins of a loaded config. The config file is read again for its hash.
ProjectPins pins_of(const Config& cfg);

// SHA-256 (hex) of a file's bytes; "unreadable" when it cannot be read.
std::string file_sha256(const std::string& path);

nlohmann::json pins_to_json(const ProjectPins& p);
// Fails on anything that is not a record this version wrote (a damaged store entry is
// an error the user must see, never "no pins").
Result<ProjectPins> pins_from_json(const nlohmann::json& j);

}  // namespace kz
