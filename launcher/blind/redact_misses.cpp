#include "blind/redact_misses.h"

#include <string>

namespace kz {

TokenUse redact_miss_record(const wire::Request& req, const PeerProcess& peer, unsigned miss) {
  TokenUse a;
  a.op = UseOp::Redact;
  a.decision = "refuse";
  a.pid = static_cast<long>(peer.pid);
  a.exe = peer.exe;
  a.lineage = peer.lineage;
  a.host = std::string(req.host, req.host_len);
  a.channel = req.channel == wire::Channel::OpenSSL ? "openssl" : req.channel == wire::Channel::GnuTLS ? "gnutls" : "plain";
  if (req.peer_len > 0) a.peer = std::string(req.peer, req.peer_len);
  a.conn = req.conn_id;
  std::string why = "redact miss " + std::to_string(miss) + " of " + std::to_string(kMaxRedactMisses) +
                    " on this connection: the bytes are no value of this run (a guess, or a fingerprint collision)";
  if (miss >= kMaxRedactMisses) why += "; connection closed";
  a.reason = std::move(why);
  return a;
}

}  // namespace kz
