// What the TLS tap looks for in a captured write: a run's tokens (KZ_TOK_...) and its
// secret values, in the forms a program sends them (raw, base64 inside Basic
// credentials, percent- or JSON-encoded), and whether the host it goes to may have them.
//
// The detector holds no secret value. For each form of each value it keeps a keyed
// rolling hash and a truncated HMAC-SHA256 of one fixed-length window of it, under a
// key drawn at random for the run: a scan rolls the hash over the captured bytes and
// confirms a candidate window with the HMAC. A capture that holds the window is a
// sighting; the rest of the value is not compared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "secrets/binding.h"

namespace kz {

struct WatchedSecret {
  std::string name;
  std::string_view value;   // read by build() only
  std::string token;        // blind mode's token, or "" in a standard run
  Binding binding;          // allow_any: no host is wrong for it (no leak can be told)
  // A canary (secrets/canary.h): bound nowhere; any sight of it is a "canary" record
  // (RunSensors raises the run's CanaryAlarm), not a leak or exfil. Watched as what the
  // agent holds: its made-up value in a standard run, its token in blind mode.
  bool canary = false;
};

enum class SightingKind { Token, Value };

struct Sighting {
  SightingKind kind;
  std::size_t secret;   // index into the list given to build()
  bool bound;           // the host may receive this secret
};

class LeakDetector {
 public:
  // Values shorter than this are not watched (they would match ordinary text).
  static constexpr std::size_t kMinValueLen = 8;
  // The window compared, from the middle of each form of a value (a value's start is
  // often a common prefix: "sk-", "ghp_", "-----BEGIN").
  static constexpr std::size_t kWindow = 16;

  static LeakDetector build(const std::vector<WatchedSecret>& secrets);

  // Every (kind, secret) seen in `data`, once each, in order of first appearance, with
  // whether `host` is bound to it. `host` is a server name or an IP literal; "" (the tap
  // could not tell) is bound to nothing.
  std::vector<Sighting> scan(std::string_view data, std::string_view host) const;

  // Whether `host` may receive secret `i` (as scan() judges it).
  bool bound(std::size_t i, std::string_view host) const;

  std::size_t size() const { return names_.size(); }
  const std::string& name(std::size_t i) const { return names_[i]; }
  bool canary(std::size_t i) const { return i < canaries_.size() && canaries_[i]; }
  // Secrets whose value is not watched (shorter than kMinValueLen).
  const std::vector<std::string>& unwatched() const { return unwatched_; }

 private:
  struct Window {
    std::size_t secret;
    std::uint64_t roll;                 // keyed rolling hash of the window
    unsigned char mac[16];              // HMAC-SHA256(key, window), truncated
  };
  struct Width {
    std::size_t len;                                           // window length
    std::uint64_t top;                                         // base^(len-1) mod p
    std::unordered_multimap<std::uint64_t, std::size_t> by_roll;   // roll -> index in windows_
  };

  bool confirm(const Window& w, const char* p, std::size_t len) const;

  std::vector<std::string> names_;
  std::vector<Binding> bindings_;
  std::vector<bool> canaries_;
  std::unordered_map<std::string, std::size_t> tokens_;
  std::vector<Window> windows_;
  std::vector<Width> widths_;
  std::vector<std::string> unwatched_;
  std::uint64_t base_ = 0;
  std::string key_;   // the run's HMAC key (random; not a secret value)
};

}  // namespace kz
