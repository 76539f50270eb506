#include "mcp/replicas.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kz::mcp {

Result<std::unique_ptr<Replicas>> open_replicas(const PdpState& st) {
  const McpReplicaConfig& rc = st.bundle.mcp.replicas;
  if (!rc.enabled()) return std::unique_ptr<Replicas>();
  auto key = resolve_with_providers(st.providers, rc.key_provider, rc.key_ref);
  if (!key)
    return make_error(key.error().kind, st.bundle.path + ": mcp.replicas: the sealing key (provider " + rc.key_provider +
                                            ") could not be resolved: " + key.error().message);
  auto seal = ReplicaSeal::from_key(*key);
  if (!seal) return make_error(seal.error().kind, st.bundle.path + ": " + seal.error().message);
  auto r = std::make_unique<Replicas>();
  r->seal = std::move(*seal);
  // A deny list that is not there revokes nothing without a word: a missing volume or a
  // typo must stop the start, not open every revoked token again.
  if (!rc.deny_list.empty() && ::access(rc.deny_list.c_str(), R_OK) != 0)
    return make_error(ErrorKind::Config, st.bundle.path + ": mcp.replicas.deny_list " + rc.deny_list + ": " +
                                             std::strerror(errno) + " (create it empty to revoke nothing)");
  if (!rc.deny_list.empty()) r->deny = std::make_unique<DenyList>(rc.deny_list);
  return r;
}

}  // namespace kz::mcp
