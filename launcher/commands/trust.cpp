// kz trust [--yes]: show how the project's bindings differ from those trusted, and
// record them (see trust/trust_check.h for what `kz run --blind` does with the record).
#include <stdio.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "commands/commands.h"
#include "commands/load.h"
#include "core/log.h"
#include "trust/pins_diff.h"
#include "trust/trust_store.h"

namespace kz {

namespace {

std::string join(const std::vector<std::string>& v, const char* if_empty) {
  if (v.empty()) return if_empty;
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void print_pins(const ProjectPins& p) {
  for (const auto& [name, s] : p.secrets)
    std::printf("  %s (%s): hosts %s; methods %s; paths %s\n", name.c_str(), s.source.c_str(),
                join(s.hosts, "none").c_str(), join(s.methods, "any").c_str(), join(s.paths, "any").c_str());
  if (!p.ca_file.empty())
    std::printf("  [blind] ca_file %s (sha256 %s)\n", p.ca_file.c_str(), p.ca_sha256.c_str());
}

// The parent process id of pid, from /proc; false at the top or on error.
bool parent_of(pid_t pid, pid_t* ppid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return false;
  const auto close = stat.rfind(')');   // the command name may hold spaces and parentheses
  if (close == std::string::npos || close + 4 > stat.size()) return false;
  long p = 0;
  if (std::sscanf(stat.c_str() + close + 2, "%*c %ld", &p) != 1 || p <= 0) return false;
  *ppid = static_cast<pid_t>(p);
  return true;
}

std::string exe_of(pid_t pid) {
  char buf[4096];
  const ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// An agent must not approve its own bindings: kz trust refuses inside a kz run (the
// broker's variable, or a kz process above it; blind runs are subreapers, so a program
// that daemonizes stays below kz).
bool inside_kz_run() {
  if (getenv("KZ_BROKER") != nullptr) return true;
  const std::string self = exe_of(getpid());
  pid_t pid = getpid();
  for (int depth = 0; depth < 256 && parent_of(pid, &pid) && pid > 1; ++depth)
    if (!self.empty() && exe_of(pid) == self) return true;
  return false;
}

}  // namespace

int cmd_trust(const GlobalOptions& g, const TrustOptions& o) {
  if (inside_kz_run()) {
    spdlog::error("kz trust cannot run inside kz run: a command under kz must not approve its own bindings. "
                  "Run it yourself, outside the agent's session.");
    return kExitConfig;
  }
  auto cfg = load_config_for(g);
  if (!cfg) { spdlog::error("{}", cfg.error().message); return kExitConfig; }
  auto store = TrustStore::open_default();
  if (!store) { spdlog::error("{}", store.error().message); return kExitConfig; }
  auto trusted = store->load(cfg->path);
  if (!trusted) { spdlog::error("{}", trusted.error().message); return kExitConfig; }
  const ProjectPins now = pins_of(*cfg);

  std::printf("%s\n", cfg->path.c_str());
  if (!trusted->has_value()) {
    std::printf("not trusted yet; these bindings will be trusted (a value may go only to these hosts):\n");
    print_pins(now);
  } else {
    const PinsDiff d = diff_pins(**trusted, now);
    if (d.empty()) {
      std::printf("the bindings are as trusted; nothing to record.\n");
      return kExitOk;
    }
    std::printf("changes since the bindings were trusted (+ lets a value go somewhere new, - narrows):\n%s",
                d.format().c_str());
  }
  if (!o.yes) {
    if (isatty(0) != 1) {
      std::printf("not recorded: answer at a terminal, or run `kz trust --yes` once you have checked them.\n");
      return kExitConfig;
    }
    std::printf("Trust these bindings? [y/N] ");
    std::fflush(stdout);
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
      std::printf("not recorded.\n");
      return kExitConfig;
    }
  }
  if (auto st = store->save(now); !st) { spdlog::error("{}", st.error().message); return kExitInternal; }
  std::printf("recorded in %s\n", store->path_for(now.config).c_str());
  return kExitOk;
}

}  // namespace kz
