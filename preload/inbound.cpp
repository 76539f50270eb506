#include "kz/preload/inbound.h"

#include "kz/wire/fingerprint.h"

namespace kz::preload {

std::size_t redact_buffer(unsigned char* p, std::size_t n, const Fingerprint* fps, std::size_t nfps,
                          const BrokerOps& b, ConnState* st) {
  std::size_t replaced = 0;
  for (std::size_t i = 0; i < nfps; ++i) {
    const Fingerprint& f = fps[i];
    if (f.len == 0 || f.len > wire::kMaxData || f.len > n) continue;
    // Collect first, then replace: overwriting during the scan would corrupt the rolling hash.
    std::size_t hits[64];
    std::size_t nh = 0;
    wire::fp_scan(p, n, f.len, f.base, f.hash, [&](std::size_t off) {
      if (nh > 0 && off < hits[nh - 1] + f.len) return true;   // overlaps the previous hit
      hits[nh++] = off;
      return nh < 64;
    });
    for (std::size_t h = 0; h < nh; ++h)
      if (b.redact != nullptr && b.redact(b.ctx, st, p + hits[h], f.len)) ++replaced;
  }
  return replaced;
}

void inbound_after_read(ConnTable& t, const void* key, void* buf, std::size_t n, const BrokerOps& b) {
  if (n == 0 || t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  StateLock lk(st);
  if (st->nfps == 0) return;
  redact_buffer(static_cast<unsigned char*>(buf), n, st->fps, st->nfps, b, st);
}

}  // namespace kz::preload
