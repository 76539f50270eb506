// Where `kz trust` keeps each project's pins: one JSON file per config, named by the
// SHA-256 of the config's absolute path, under $XDG_CONFIG_HOME/keyzero/trust (default
// ~/.config/keyzero/trust). Outside the workspace on purpose: an agent that edits the
// project's files does not edit these (see docs/security.md for what a same-user agent
// can still do). Files 0600 in 0700 directories, replaced atomically.
#pragma once

#include <optional>
#include <string>

#include "kz/result.h"
#include "trust/project_pins.h"

namespace kz {

class TrustStore {
 public:
  // The store under `dir` (created on the first save).
  explicit TrustStore(std::string dir) : dir_(std::move(dir)) {}
  // $XDG_CONFIG_HOME/keyzero/trust, else $HOME/.config/keyzero/trust; an error when
  // neither variable is set.
  static Result<TrustStore> open_default();

  const std::string& dir() const { return dir_; }
  // The file holding `config_path`'s pins.
  std::string path_for(const std::string& config_path) const;

  // nullopt: this config was never trusted. An error: the record exists but cannot be
  // read or is damaged (never taken as "no record": that would re-trust silently).
  Result<std::optional<ProjectPins>> load(const std::string& config_path) const;
  Status save(const ProjectPins& pins) const;

 private:
  std::string dir_;
};

}  // namespace kz
