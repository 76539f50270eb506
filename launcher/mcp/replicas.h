// What the replicas of one MCP server share (mcp.replicas in the bundle): the sealing
// key, read from the bundle's provider at start (replica_seal.h), and the deny list
// (deny_list.h). Null where a server runs alone: tokens and sessions then live in its
// memory only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kz/result.h"
#include "mcp/deny_list.h"
#include "mcp/replica_seal.h"
#include "server/pdp_state.h"

namespace kz::mcp {

struct Replicas {
  std::shared_ptr<const ReplicaSeal> seal;
  std::unique_ptr<DenyList> deny;   // null: no deny_list configured

  // A token or session id on the deny list (or the list unreadable: fail closed).
  bool revoked(std::string_view id) const { return deny && deny->denies(id); }
};

// Null when the bundle has no mcp.replicas; an error names the provider and ref when
// the key cannot be resolved or is not 32 bytes.
Result<std::unique_ptr<Replicas>> open_replicas(const PdpState& st);

}  // namespace kz::mcp
