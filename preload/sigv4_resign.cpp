#include "kz/preload/sigv4_resign.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cstring>

#include "kz/preload/http_rewrite.h"
#include "kz/preload/message_tracker.h"
#include "kz/wire/sha256.h"

namespace kz::preload {

namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";
constexpr std::size_t kAlgorithmLen = sizeof kAlgorithm - 1;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Does the head [p, p+n) have a header line named `name` (lower-case, with its colon)?
bool has_header(const char* p, std::size_t n, const char* name) {
  const std::size_t nl = std::strlen(name);
  for (std::size_t i = 0; i + 2 + nl <= n; ++i) {
    if (p[i] != '\n') continue;
    std::size_t k = 0;
    while (k < nl && lower(p[i + 1 + k]) == name[k]) ++k;
    if (k == nl) return true;
  }
  return false;
}

struct Need {
  std::size_t start = 0, head_len = 0;
  bool body_known = false;
  std::size_t body_pos = 0, body_len = 0;
  bool wants_body = false;   // no x-amz-content-sha256: the signature covers the body's hash
  bool body_incomplete = false;
  bool holdable = false;
};

// What re-signing the request that starts at ref needs; false when it is no SigV4 request.
bool sigv4_need(const char* buf, const RequestRef& ref, Need* need) {
  const std::size_t start = ref.method.pos;
  if (start >= ref.end) return false;
  const HttpHead h = parse_head(buf + start, ref.end - start);
  if (!h.is_request || !h.complete) return false;
  if (!may_be_sigv4(buf + start, h.head_end)) return false;
  need->start = start;
  need->head_len = h.head_end;
  need->wants_body = !has_header(buf + start, h.head_end, "x-amz-content-sha256:");
  const std::size_t have = ref.end - start - h.head_end;
  if (h.chunked) return true;   // a chunked body's hash is never known here
  const std::uint64_t cl = h.has_content_length ? h.content_length : 0;
  if (cl <= have) {
    need->body_known = true;
    need->body_pos = start + h.head_end;
    need->body_len = static_cast<std::size_t>(cl);
  } else {
    need->body_incomplete = true;
    // A client that waits for 100 Continue before it sends the body would wait forever.
    need->holdable = !h.expect_continue;
  }
  return true;
}

}  // namespace

bool may_be_sigv4(const char* p, std::size_t n) { return find_bytes(p, n, kAlgorithm, kAlgorithmLen) != nullptr; }

ResignResult resign_sigv4(char* buf, std::size_t n, const TrackResult& tr, const OutboundOptions& opt,
                          const BrokerOps& b, ConnState* st) {
  ResignResult res;
  if (b.sign == nullptr || !may_be_sigv4(buf, n)) return res;
  // First: does any request need a body that is still to come? Then hold all, change
  // nothing (a request signed now and held would be signed again later).
  for (std::size_t i = 0; i < tr.nrefs; ++i) {
    const RequestRef& ref = tr.refs[i];
    Need need;
    if (ref.kind != RequestRef::Kind::InBuffer || !sigv4_need(buf, ref, &need)) continue;
    if (need.wants_body && need.body_incomplete && need.holdable && opt.allow_hold && n <= opt.hold_limit) {
      res.hold = true;
      return res;
    }
  }
  char data[wire::kMaxData];
  for (std::size_t i = 0; i < tr.nrefs; ++i) {
    const RequestRef& ref = tr.refs[i];
    Need need;
    if (ref.kind != RequestRef::Kind::InBuffer || !sigv4_need(buf, ref, &need)) continue;
    if (!bind_request(opt, st, buf, need.start)) continue;
    if (need.body_known && need.wants_body) {   // else the signed header names the hash
      wire::sha256_hex(buf + need.body_pos, need.body_len, data);
    } else {
      std::memset(data, '-', wire::kSignHashLen);
    }
    std::uint32_t form = 0;
    std::size_t hl = need.head_len;
    if (hl > sizeof data - wire::kSignHashLen) {
      hl = sizeof data - wire::kSignHashLen;
      form = wire::kSignHeadTruncated;
    }
    std::memcpy(data + wire::kSignHashLen, buf + need.start, hl);
    char sig[wire::kSignHashLen];
    std::size_t at = 0;
    const wire::Decision d = b.sign(b.ctx, st, data, wire::kSignHashLen + hl, form, sig, &at);
    explicit_bzero(data, wire::kSignHashLen + hl);
    if (d == wire::Decision::Allow && at + wire::kSignHashLen <= need.head_len) {
      std::memcpy(buf + need.start + at, sig, wire::kSignHashLen);
      ++res.signed_count;
    } else if (d != wire::Decision::Unknown) {
      ++res.refused;
    }
    explicit_bzero(sig, sizeof sig);
  }
  return res;
}

}  // namespace kz::preload
