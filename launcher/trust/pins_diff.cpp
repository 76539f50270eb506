#include "trust/pins_diff.h"

#include <algorithm>

namespace kz {

namespace {

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

class Collector {
 public:
  void widen(std::string text) { d_.changes.push_back({true, std::move(text)}); }
  void narrow(std::string text) { d_.changes.push_back({false, std::move(text)}); }

  // A list where empty means "any" (methods, paths): going to any, or adding an item to
  // a non-empty list, widens.
  void rule_list(const std::string& secret, const char* what, const std::vector<std::string>& was,
                 const std::vector<std::string>& now) {
    if (!was.empty() && now.empty()) {
      widen(secret + ": any " + what + " (was only " + join(was) + ")");
      return;
    }
    if (was.empty() && !now.empty()) {
      narrow(secret + ": only " + std::string(what) + " " + join(now) + " (was any)");
      return;
    }
    for (const auto& x : now)
      if (!has(was, x)) widen(secret + ": " + what + " " + x);
    for (const auto& x : was)
      if (!has(now, x)) narrow(secret + ": " + what + " " + x);
  }

  PinsDiff take() {
    std::stable_sort(d_.changes.begin(), d_.changes.end(),
                     [](const PinChange& a, const PinChange& b) { return a.widens && !b.widens; });
    return std::move(d_);
  }

 private:
  PinsDiff d_;
};

}  // namespace

bool PinsDiff::widens() const {
  return std::any_of(changes.begin(), changes.end(), [](const PinChange& c) { return c.widens; });
}

std::string PinsDiff::format(const std::string& indent) const {
  std::string out;
  for (const auto& c : changes) out += indent + (c.widens ? "+ " : "- ") + c.text + "\n";
  return out;
}

PinsDiff diff_pins(const ProjectPins& trusted, const ProjectPins& now) {
  Collector c;
  for (const auto& [name, s] : now.secrets) {
    auto it = trusted.secrets.find(name);
    if (it == trusted.secrets.end()) {
      c.widen("new secret " + name + " (" + s.source + ") to host(s) " + (s.hosts.empty() ? "none" : join(s.hosts)));
      continue;
    }
    const SecretPin& was = it->second;
    if (was.source != s.source) c.widen(name + ": read from " + s.source + " (was " + was.source + ")");
    for (const auto& h : s.hosts)
      if (!has(was.hosts, h)) c.widen(name + ": host " + h);
    for (const auto& h : was.hosts)
      if (!has(s.hosts, h)) c.narrow(name + ": host " + h);
    c.rule_list(name, "method", was.methods, s.methods);
    c.rule_list(name, "path", was.paths, s.paths);
    if (was.approve != s.approve) {
      if (was.approve.empty()) c.narrow(name + ": approve " + s.approve);
      else c.widen(name + ": approve " + (s.approve.empty() ? "removed" : s.approve) + " (was " + was.approve + ")");
    }
  }
  for (const auto& [name, s] : trusted.secrets)
    if (now.secrets.count(name) == 0) c.narrow("secret " + name + " removed");
  if (now.ca_file != trusted.ca_file) {
    if (!now.ca_file.empty()) c.widen("[blind] ca_file " + now.ca_file + (trusted.ca_file.empty() ? "" : " (was " + trusted.ca_file + ")"));
    else c.narrow("[blind] ca_file " + trusted.ca_file + " removed");
  } else if (!now.ca_file.empty() && now.ca_sha256 != trusted.ca_sha256) {
    c.widen("[blind] ca_file " + now.ca_file + ": its contents changed (sha256 " + now.ca_sha256.substr(0, 16) + "…, was " +
            trusted.ca_sha256.substr(0, 16) + "…)");
  }
  return c.take();
}

}  // namespace kz
