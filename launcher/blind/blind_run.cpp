#include "blind/blind_run.h"

#include <unistd.h>

#include <cstring>

#include "blind/preload_path.h"
#include "core/log.h"
#include "kz/wire/protocol.h"

namespace kz {

Result<std::unique_ptr<BlindRun>> BlindRun::prepare(const Config& cfg, const std::vector<std::string>& names,
                                                    bool allow_any_host) {
  auto bindings = blind_bindings(cfg, names, allow_any_host);
  if (!bindings) return bindings.take_error();
  for (const auto& [name, b] : *bindings)
    if (b.allow_any)
      spdlog::warn("--allow-any-host: {} has no hosts and will be sent to ANY host whose certificate verifies; "
                   "bind it with hosts = [...]", name);
  auto preload = find_preload_library();
  if (!preload) return preload.take_error();
  auto verifier = PeerVerifier::create(cfg.blind.ca_file);
  if (!verifier) return verifier.take_error();
  auto run = std::unique_ptr<BlindRun>(new BlindRun(std::move(*bindings), std::move(*preload), std::move(*verifier)));
  run->grant_connections_ = cfg.blind.grant_connections;
  return run;
}

Status BlindRun::start(std::vector<ResolvedSecret> values, std::function<void(nlohmann::json)> audit) {
  auto table = TokenTable::build(std::move(values), bindings_);
  if (!table) return table.take_error();
  table_.emplace(std::move(*table));
  for (const auto& s : table_->secrets()) {
    nlohmann::json hosts = s.binding.allow_any ? nlohmann::json::array({"*"}) : nlohmann::json(s.binding.hosts);
    audit({{"event", "token"}, {"secret", s.name}, {"token_id", s.token_id}, {"hosts", hosts},
           {"same_length", s.token.size() == s.value.size()}});
  }
  BrokerOptions bo;
  bo.decide.table = &*table_;
  bo.decide.verifier = &verifier_;
  bo.decide.grant_connections = grant_connections_;
  bo.tree = &tree_;
  bo.audit = std::move(audit);
  auto broker = Broker::start(std::move(bo));
  if (!broker) return broker.take_error();
  broker_ = std::move(*broker);
  spdlog::info("blind mode: {} token(s); shim {}; broker {}", table_->secrets().size(), preload_,
               broker_->socket_path());
  return ok_status();
}

std::vector<ResolvedSecret> BlindRun::child_secrets() const {
  std::vector<ResolvedSecret> out;
  for (const auto& s : table_->secrets()) out.push_back({s.name, "token", SecretValue::from(s.token.view())});
  return out;
}

std::vector<EnvVar> BlindRun::child_vars(char** parent_env) const {
  std::string preload = preload_;
  for (char** e = parent_env; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) == 0 && (*e)[11] != '\0') preload += std::string(":") + (*e + 11);
  std::vector<EnvVar> out;
  out.push_back({"LD_PRELOAD", preload, {}});
  out.push_back({wire::kEnvBroker, broker_ ? broker_->socket_path() : "", {}});
  out.push_back({wire::kEnvPreload, preload_, {}});
  out.push_back({wire::kEnvFixupLengths, table_ && table_->needs_length_fixup() ? "1" : "0", {}});
  return out;
}

void BlindRun::stop() {
  if (broker_) broker_->stop();
}

}  // namespace kz
