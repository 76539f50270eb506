#include "kz/wire/protocol.h"

namespace kz::wire {

namespace {

bool op_ok(Op op) {
  return op == Op::Swap || op == Op::Redact || op == Op::Report || op == Op::Sign || op == Op::Seal;
}

}  // namespace

bool request_is_valid(const Request& r, std::size_t received_bytes) {
  if (received_bytes != sizeof(Request) || r.version != kProtocolVersion || !op_ok(r.op)) return false;
  if (r.channel != Channel::OpenSSL && r.channel != Channel::GnuTLS && r.channel != Channel::Plain) return false;
  if ((r.flags & ~(kFlagTokenAtEnd | kFlagPeerHasChain | kUnsafeFlags | kFlagCodedResponse | kRequestFlags)) != 0)
    return false;
  if ((r.flags & kFlagCodedResponse) != 0 && r.op != Op::Report) return false;
  if ((r.flags & kRequestFlags) != 0 && r.op == Op::Redact) return false;   // a Redact is about a response
  if (r.op == Op::Seal) {
    if (r.form == 0 || (r.flags & kRequestFlags) != 0) return false;   // form: the arming secret's id
  } else if (r.op == Op::Sign) {
    if ((r.form & ~(kSignHeadTruncated | kFormHandshakeUnfinished)) != 0 || r.data_len <= kSignHashLen) return false;
  } else if (r.op == Op::Report) {
    if (r.form != 0 && r.form != kReportH2StreamReset) return false;   // why the token was not sent
  } else if (r.op == Op::Swap) {
    if ((r.form & ~kFormHandshakeUnfinished) != 0) return false;
  } else if (r.form >= kValueFormCount || (r.form != 0 && r.op != Op::Redact)) {
    return false;
  }
  if (r.host_len > kMaxHost || r.method_len > kMaxMethod || r.path_len > kMaxPath || r.peer_len > kMaxPeer ||
      r.http_host_len > kMaxHost || r.reserved != 0)
    return false;
  for (std::size_t i = 0; i < r.http_host_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(r.http_host[i]);
    if (c <= 0x20 || c >= 0x7f) return false;   // the shim sends a Host it cannot print as invalid instead
  }
  if (r.data_len == 0 || r.data_len > kMaxData || r.chain_len > kMaxChain) return false;
  if (((r.flags & kFlagPeerHasChain) != 0) != (r.chain_len > 0)) return false;
  if (r.uses != 0 && r.op != Op::Report) return false;
  for (std::size_t i = 0; i < r.host_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(r.host[i]);
    if (c <= 0x20 || c >= 0x7f) return false;   // host names and IP literals are printable ASCII
  }
  return true;
}

bool reply_is_valid(const Reply& r, std::size_t received_bytes, Op expected_op) {
  if (received_bytes != sizeof(Reply) || r.version != kProtocolVersion || r.op != expected_op) return false;
  if (r.decision != Decision::Allow && r.decision != Decision::Refuse && r.decision != Decision::Incomplete &&
      r.decision != Decision::Unknown && r.decision != Decision::Hold)
    return false;
  if (r.decision == Decision::Hold)
    return r.op == Op::Swap && r.data_len == 0 && r.flags == 0 && r.nforms == 0 && r.token_len > 0 &&
           r.token_len <= kMaxHoldSeconds && r.reason_len <= kMaxReason;
  if (r.data_len > kMaxData || r.reason_len > kMaxReason || r.token_len > kMaxTokenLen) return false;
  if (r.decision == Decision::Allow && r.data_len == 0) return false;
  if ((r.flags & ~(kReplyReuseOnConnection | kReplySealResponses)) != 0) return false;
  if (r.nforms > kValueFormCount) return false;
  for (std::size_t i = 0; i < r.nforms; ++i)
    if (r.forms[i].form >= kValueFormCount || r.forms[i].len == 0 || r.forms[i].len > kMaxFormLen) return false;
  if (r.flags != 0 && (r.op != Op::Swap || r.decision != Decision::Allow)) return false;
  return true;
}

}  // namespace kz::wire
