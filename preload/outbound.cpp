#include "kz/preload/outbound.h"

#include <string.h>

#include <cstring>

#include "kz/preload/accept_encoding.h"
#include "kz/preload/basic_auth.h"
#include "kz/wire/scanner.h"
#include "kz/wire/token.h"
#include "kz/preload/scratch.h"

namespace kz::preload {

namespace {

constexpr std::size_t kMaxEdits = 128;
constexpr std::size_t kMaxBasic = 4;
constexpr std::size_t kHeadScanLimit = 16384;   // Basic headers are searched for in this much of a head

struct TokenEdit {
  Edit e;
  bool is_token = true;   // false: a re-encoded Basic credential
};

// Swaps tokens inside a decoded Basic credential [dec, dec+dn) into swapped; returns its
// length, or 0 when nothing was swapped.
std::size_t swap_inside(const char* dec, std::size_t dn, char* swapped, const BrokerOps& b, ConnState* st,
                        std::size_t* nswapped) {
  std::size_t o = 0, i = 0;
  bool any = false;
  while (i < dn) {
    const std::size_t off = wire::find_token_prefix(dec + i, dn - i);
    if (off == dn - i) break;
    const std::size_t t = i + off;
    const std::size_t ext = wire::token_extent(dec + t, dn - t);
    std::memcpy(swapped + o, dec + i, t - i);
    o += t - i;
    std::size_t vl = 0, tl = 0;
    // The header value ended: the token is complete even when it ends the credential.
    const wire::Decision d = b.swap(b.ctx, st, dec + t, ext, false, swapped + o, ext, &vl, &tl);
    if (d == wire::Decision::Allow && vl > 0 && vl <= ext) {
      o += vl;
      any = true;
      ++*nswapped;
    } else {
      std::memcpy(swapped + o, dec + t, ext);
      o += ext;
    }
    i = t + ext;
  }
  if (!any) return 0;
  std::memcpy(swapped + o, dec + i, dn - i);
  return o + (dn - i);
}

// Length of the head at the start of [p, p+n): up to and including CRLFCRLF, or n.
std::size_t head_extent(const char* p, std::size_t n) {
  const void* end = memmem(p, n, "\r\n\r\n", 4);
  return end != nullptr ? static_cast<std::size_t>(static_cast<const char*>(end) - p) + 4 : n;
}

// Reports every token in [p, p+n) (a credential that could not be rewritten).
void report_tokens_in(const char* p, std::size_t n, const BrokerOps& b, ConnState* st, std::size_t* reported) {
  for (std::size_t i = 0; i < n;) {
    const std::size_t off = wire::find_token_prefix(p + i, n - i);
    if (off == n - i) break;
    const std::size_t ext = wire::token_extent(p + i + off, n - i - off);
    if (b.report) b.report(b.ctx, st, p + i + off, ext);
    ++*reported;
    i += off + ext;
  }
}

void sort_edits(TokenEdit* e, std::size_t k) {
  for (std::size_t i = 1; i < k; ++i)
    for (std::size_t j = i; j > 0 && e[j].e.pos < e[j - 1].e.pos; --j) {
      TokenEdit tmp = e[j];
      e[j] = e[j - 1];
      e[j - 1] = tmp;
    }
}

}  // namespace

OutboundResult rewrite_outbound(const char* in, std::size_t n, const OutboundOptions& opt, const BrokerOps& b,
                                ConnState* st, char* out, char* work) {
  OutboundResult r;
  const HttpHead h = parse_head(in, n);
  // A head with Content-Length whose body is not all here: when the lengths may change,
  // hold the whole request so that Content-Length can be corrected once the body is in.
  if (opt.fixup_lengths && opt.allow_hold && h.is_request && h.complete && h.has_content_length &&
      !h.expect_continue && h.content_length > 0 && h.head_end + h.content_length > n &&
      h.head_end + h.content_length <= opt.hold_limit) {
    r.hold_request = true;
    return r;
  }
  // A chunked body: where does this buffer leave it? Clients write a chunk's size line,
  // data and CRLF separately (urllib3 does), so when lengths may change, a buffer that
  // ends inside a chunk is held until the chunk is complete: then its size line can be
  // corrected. Past the hold limit, or on anything we cannot follow, the connection
  // stops tracking the body (chunked_next false) and length-changing swaps in it are
  // refused (reported), never sent with a wrong size.
  std::size_t chunk_from = n + 1;
  if (h.is_request && h.complete && h.chunked) chunk_from = h.head_end;
  else if (!h.is_request && opt.in_chunked_body) chunk_from = 0;
  if (chunk_from <= n) {
    const ChunkedTail tail = chunked_tail(in, n, chunk_from);
    if (tail == ChunkedTail::Incomplete && opt.fixup_lengths && opt.allow_hold && n <= opt.hold_limit) {
      r.hold_request = true;
      return r;
    }
    r.chunked_next = tail == ChunkedTail::Boundary;
  }

  TokenEdit edits[kMaxEdits];
  std::size_t k = 0;
  char* values = work;            // token values and re-encoded credentials (<= n bytes)
  char* tmp = work + n + 32;      // decoded Basic credential and its swapped copy (<= 2n)
  std::size_t vused = 0;
  std::size_t limit = n;          // bytes after this are carried (incomplete token)

  std::size_t pos = 0;
  while (pos < n) {
    const std::size_t off = wire::find_token_prefix(in + pos, n - pos);
    if (off == n - pos) break;
    const std::size_t t = pos + off;
    const std::size_t ext = wire::token_extent(in + t, n - t);
    const bool at_end = t + ext == n;
    pos = t + ext;
    if (ext == wire::kTokenPrefixLen && !at_end) continue;   // "KZ_TOK_" and no token text
    if (k == kMaxEdits) {
      if (b.report) b.report(b.ctx, st, in + t, ext);
      ++r.reported;
      continue;
    }
    std::size_t vl = 0, tl = 0;
    const wire::Decision d = b.swap(b.ctx, st, in + t, ext, at_end, values + vused, ext, &vl, &tl);
    if (d == wire::Decision::Allow && vl > 0 && vl <= ext) {
      edits[k].e = Edit{t, ext, values + vused, vl, false};
      edits[k].is_token = true;
      ++k;
      vused += vl;
    } else if (d == wire::Decision::Incomplete && at_end && opt.allow_carry && tl > ext) {
      limit = t;   // the rest of this token comes with the next write
      break;
    } else if (d == wire::Decision::Incomplete) {
      // The start of a token that cannot be held back (flush, no connection state): it
      // goes out unchanged, so it is reported (the broker audits no Incomplete answer).
      if (b.report) b.report(b.ctx, st, in + t, ext);
      ++r.reported;
    }
    // Refuse / Unknown / broker error: the token stays; the broker audited its answer.
  }

  // Basic credentials in the head: decode, swap inside, re-encode.
  if (h.is_request && h.complete && h.head_end <= limit) {
    const std::size_t scan = h.head_end < kHeadScanLimit ? h.head_end : kHeadScanLimit;
    if (may_hold_basic(in, scan)) {
      B64Span spans[kMaxBasic];
      const std::size_t ns = find_basic_credentials(in, scan, spans, kMaxBasic);
      for (std::size_t s = 0; s < ns && k < kMaxEdits; ++s) {
        unsigned char* dec = reinterpret_cast<unsigned char*>(tmp);
        const long dn = b64_decode(in + spans[s].pos, spans[s].len, dec, spans[s].len);
        if (dn <= 0) continue;
        const auto dlen = static_cast<std::size_t>(dn);
        if (wire::find_token_prefix(reinterpret_cast<char*>(dec), dlen) == dlen) continue;
        char* swapped = tmp + dlen;
        std::size_t inside = 0;
        const std::size_t sl = swap_inside(reinterpret_cast<char*>(dec), dlen, swapped, b, st, &inside);
        if (sl > 0) {
          const long el = b64_encode(reinterpret_cast<unsigned char*>(swapped), sl, values + vused, spans[s].len);
          if (el > 0) {
            edits[k].e = Edit{spans[s].pos, spans[s].len, values + vused, static_cast<std::size_t>(el), false};
            edits[k].is_token = false;
            ++k;
            vused += static_cast<std::size_t>(el);
            r.swapped += inside;
          } else {
            // The re-encoded credential does not fit where the old one was (unpadded
            // base64 that padding would lengthen): it goes out unchanged, reported.
            report_tokens_in(reinterpret_cast<const char*>(dec), dlen, b, st, &r.reported);
          }
        }
        explicit_bzero(tmp, dlen + (sl > 0 ? sl : 0));
      }
    }
  }

  r.carry_len = n - limit;
  if (k == 0) {
    r.out_len = limit;
    return r;
  }
  sort_edits(edits, k);
  Edit plain[kMaxEdits];
  for (std::size_t i = 0; i < k; ++i) plain[i] = edits[i].e;
  FrameContext fc;
  fc.fixup_lengths = opt.fixup_lengths;
  fc.in_chunked_body = opt.in_chunked_body;
  const ApplyResult ar = apply_edits(in, limit, plain, k, fc, out);
  explicit_bzero(values, vused);
  r.out_len = ar.out_len;
  r.changed = ar.applied > 0;
  r.swapped += ar.applied;
  for (std::size_t i = 0; i < k; ++i) {
    if (!plain[i].dropped) {
      if (edits[i].is_token) {}   // counted above
      continue;
    }
    // The framing could not follow this value: the token goes out unchanged, reported.
    if (edits[i].is_token && b.report) b.report(b.ctx, st, in + plain[i].pos, plain[i].len);
    ++r.reported;
  }
  if (!r.changed) {
    explicit_bzero(out, ar.out_len);
    r.out_len = limit;
  } else if (h.is_request && h.complete) {
    // This request carries a value now: its response must come back uncompressed, where
    // inbound redaction can see a value the server echoes (accept_encoding.h).
    force_identity_encoding(out, r.out_len);
  }
  return r;
}

namespace {

// The last write ended with `have` bytes of "KZ_TOK_". Does this one go on with it? When
// it completes the prefix, the token (as far as this write has it) is reported: it went
// out unswapped, in pieces. Returns the prefix bytes matched so far when this write is
// itself only a further piece of the prefix (so a prefix spread over 3+ writes is still
// seen), else 0.
std::size_t continue_split_prefix(const char* buf, std::size_t len, std::size_t have, const BrokerOps& b,
                                  ConnState* st) {
  const std::size_t rest = wire::kTokenPrefixLen - have;
  if (len < rest) return std::memcmp(buf, wire::kTokenPrefix + have, len) == 0 ? have + len : 0;
  if (std::memcmp(buf, wire::kTokenPrefix + have, rest) != 0) return 0;
  char tok[wire::kMaxTokenLen];
  std::memcpy(tok, wire::kTokenPrefix, wire::kTokenPrefixLen);
  std::size_t n = wire::kTokenPrefixLen;
  for (std::size_t i = rest; i < len && n < sizeof tok && wire::is_base62(static_cast<unsigned char>(buf[i])); ++i)
    tok[n++] = buf[i];
  if (b.report) b.report(b.ctx, st, tok, n);
  return 0;
}

}  // namespace

WriteOutcome outbound_write(ConnTable& t, const void* key, const char* buf, std::size_t len, bool fixup_lengths,
                            const BrokerOps& b, const WriteOps& w) {
  if (len == 0 || buf == nullptr) return WriteOutcome::PassThrough;
  // Fast path: one scan for the prefix, a look at the last 6 bytes, a few compares at
  // the start. No allocation, lock or system call.
  const std::size_t first = wire::find_token_prefix(buf, len);
  const std::size_t trailing = first == len ? wire::trailing_prefix_len(buf, len) : 0;
  const bool head = looks_like_request_start(buf, len);
  // Basic credentials live in the head: look only there (the body may be large).
  const bool basic = head && may_hold_basic(buf, head_extent(buf, len < kHeadScanLimit ? len : kHeadScanLimit));
  const bool may_hold = head && fixup_lengths;
  ConnState* st = t.count() > 0 ? t.find(key) : nullptr;
  if (first == len && trailing == 0 && !basic && !may_hold) {
    if (st == nullptr) {
      if (!head) return WriteOutcome::PassThrough;
      // The request line is kept for a token in a later write: the bytes it is read from
      // are the bytes sent (a copy), so another thread cannot change the line that goes
      // out after it was noted.
      Scratch copy(len);
      if (!copy) return WriteOutcome::PassThrough;   // not noted: a later token's request is unknown
      std::memcpy(copy.get(), buf, len);
      t.lines().note(key, copy.get(), len);
      return w.write_all(w.ctx, copy.get(), len) ? WriteOutcome::Consumed : WriteOutcome::Failed;
    }
    // A connection that once carried a token: a body write with nothing pending needs no
    // lock (a request head does: its request line is remembered for the broker).
    if (!head && !st->outbound_pending.load(std::memory_order_acquire)) return WriteOutcome::PassThrough;
  }

  // This write may ask the broker (a token, a Basic credential, something held): what
  // the broker needs to know about the connection is gathered before any lock.
  if (b.prepare != nullptr &&
      (first != len || basic || (st != nullptr && st->outbound_pending.load(std::memory_order_acquire))))
    b.prepare(b.ctx, st);
  if (st == nullptr) {
    st = t.find_or_create(key);
    // The head of this request may have gone out through the fast path.
    if (st != nullptr && st->method_len == 0)
      t.lines().get(key, st->method, &st->method_len, st->path, &st->path_len);
  }
  if (st == nullptr) {
    // Table full: no state, so no carry and no hold; swap what is in this buffer only.
    OutboundOptions o;
    o.fixup_lengths = fixup_lengths;
    o.allow_hold = o.allow_carry = false;
    // Parsed, decided and sent from one copy (see below).
    Scratch copy(len), out(len), work(outbound_work_size(len));
    if (!copy || !out || !work) return WriteOutcome::PassThrough;
    std::memcpy(copy.get(), buf, len);
    const OutboundResult r = rewrite_outbound(copy.get(), len, o, b, nullptr, out.get(), work.get());
    return w.write_all(w.ctx, r.changed ? out.get() : copy.get(), r.changed ? r.out_len : len) ? WriteOutcome::Consumed
                                                                                                 : WriteOutcome::Failed;
  }

  StateLock lk(st);
  if (st->prev_trailing > 0) {
    const std::size_t still = continue_split_prefix(buf, len, st->prev_trailing, b, st);
    st->prev_trailing = static_cast<std::uint8_t>(still);
    if (still > 0) return WriteOutcome::PassThrough;   // this write is only more of the prefix
  }
  if (first == len && trailing == 0 && !basic && !may_hold && !st->has_outbound_state()) {
    if (!head) return WriteOutcome::PassThrough;
    // The request line kept for a later token is read from the bytes that are sent.
    Scratch copy(len);
    if (!copy) {
      st->method_len = st->path_len = 0;   // unknown: a path or method rule refuses
      return WriteOutcome::PassThrough;
    }
    std::memcpy(copy.get(), buf, len);
    const HttpHead h = parse_head(copy.get(), len);
    if (h.is_request)
      st->set_request_line(copy.get() + h.method.pos, h.method.len, copy.get() + h.target.pos, h.target.len);
    return w.write_all(w.ctx, copy.get(), len) ? WriteOutcome::Consumed : WriteOutcome::Failed;
  }

  // Assemble the input: a held request or a held token fragment, then this write. Copy
  // once: everything below (parse, the broker's decision, the rewrite, the send) reads
  // only the copy, never the caller's buffer again, which another thread of the program
  // may change while this call runs (a request line that passed the check must be the
  // one that goes out with the value).
  const char* in = buf;
  std::size_t n = len;
  Scratch* combo = nullptr;
  alignas(Scratch) unsigned char combo_mem[sizeof(Scratch)];
  bool from_held = false;
  std::size_t dummy_reported = 0;
  if (st->held_len > 0) {
    void* hp = st->held;
    if (!scratch_grow(&hp, &st->held_cap, st->held_len, st->held_len + len)) {
      // Cannot grow: send the held request as it is (fail closed) before this write.
      const bool ok = w.write_all(w.ctx, st->held, st->held_len);
      scratch_free(st->held, st->held_cap);
      st->held = nullptr;
      st->held_len = st->held_cap = 0;
      if (!ok) return WriteOutcome::Failed;
    } else {
      st->held = static_cast<char*>(hp);
      std::memcpy(st->held + st->held_len, buf, len);
      st->held_len += len;
      in = st->held;
      n = st->held_len;
      from_held = true;
    }
  } else if (st->carry_len > 0) {
    combo = new (combo_mem) Scratch(st->carry_len + len);
    if (!*combo) {
      combo->~Scratch();
      combo = nullptr;
    } else {
      std::memcpy(combo->get(), st->carry, st->carry_len);
      std::memcpy(combo->get() + st->carry_len, buf, len);
      in = combo->get();
      n = st->carry_len + len;
    }
    explicit_bzero(st->carry, st->carry_len);
    st->carry_len = 0;
  }
  if (in == buf) {
    combo = new (combo_mem) Scratch(len);
    if (!*combo) {
      // No memory for the copy: nothing is swapped (fail closed); the caller's bytes go
      // out as they are, tokens reported.
      combo->~Scratch();
      report_tokens_in(buf, len, b, st, &dummy_reported);
      return WriteOutcome::PassThrough;
    }
    std::memcpy(combo->get(), buf, len);
    in = combo->get();
  }

  const HttpHead h = parse_head(in, n);
  if (h.is_request) st->set_request_line(in + h.method.pos, h.method.len, in + h.target.pos, h.target.len);

  OutboundOptions o;
  o.fixup_lengths = fixup_lengths;
  o.in_chunked_body = st->chunked_body;
  bool ok = true;
  WriteOutcome outcome = WriteOutcome::Consumed;
  {
    Scratch out(n), work(outbound_work_size(n));
    OutboundResult r;
    if (out && work) {
      r = rewrite_outbound(in, n, o, b, st, out.get(), work.get());
      if (r.hold_request && !from_held) {
        void* hp = st->held;
        if (scratch_grow(&hp, &st->held_cap, 0, n)) {
          st->held = static_cast<char*>(hp);
          std::memcpy(st->held, in, n);
          st->held_len = n;
        } else {
          o.allow_hold = false;
          r = rewrite_outbound(in, n, o, b, st, out.get(), work.get());
        }
      }
    } else {
      r.out_len = n;   // no memory: everything unchanged (fail closed)
    }
    if (r.hold_request) {
      outcome = WriteOutcome::Consumed;   // held (already in st->held)
    } else {
      st->chunked_body = r.chunked_next;
      if (r.carry_len > 0) {
        std::memcpy(st->carry, in + n - r.carry_len, r.carry_len);
        st->carry_len = r.carry_len;
      } else {
        st->prev_trailing = static_cast<std::uint8_t>(wire::trailing_prefix_len(in, n));
      }
      if (!r.changed && in == buf && r.carry_len == 0) {
        outcome = WriteOutcome::PassThrough;
      } else {
        const char* send = r.changed ? out.get() : in;
        if (r.out_len > 0) ok = w.write_all(w.ctx, send, r.out_len);
        outcome = ok ? WriteOutcome::Consumed : WriteOutcome::Failed;
      }
      if (from_held) {
        scratch_free(st->held, st->held_cap);
        st->held = nullptr;
        st->held_len = st->held_cap = 0;
      }
    }
  }
  if (combo != nullptr) combo->~Scratch();
  return outcome;
}

void outbound_flush(ConnTable& t, const void* key, const BrokerOps& b, const WriteOps& w) {
  if (t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  if (b.prepare != nullptr && st->outbound_pending.load(std::memory_order_acquire)) b.prepare(b.ctx, st);
  StateLock lk(st);
  st->prev_trailing = 0;
  if (st->held_len > 0) {
    // The client reads before the body is complete: rewrite what is there without
    // waiting (same-length swaps still happen; framing that cannot follow is reported).
    OutboundOptions o;
    o.fixup_lengths = true;   // a request is only ever held with KZ_FIXUP_LENGTHS=1
    o.allow_hold = false;
    o.allow_carry = false;
    o.in_chunked_body = st->chunked_body;
    Scratch out(st->held_len), work(outbound_work_size(st->held_len));
    if (out && work) {
      const OutboundResult r = rewrite_outbound(st->held, st->held_len, o, b, st, out.get(), work.get());
      w.write_all(w.ctx, r.changed ? out.get() : st->held, r.out_len);
      st->chunked_body = r.chunked_next;
    } else {
      w.write_all(w.ctx, st->held, st->held_len);
      st->chunked_body = false;   // the body's chunk boundary is lost
    }
    scratch_free(st->held, st->held_cap);
    st->held = nullptr;
    st->held_len = st->held_cap = 0;
  }
  if (st->carry_len > 0) {
    // A token the last write ended inside, never completed: out unchanged, reported.
    if (b.report) b.report(b.ctx, st, reinterpret_cast<const char*>(st->carry), st->carry_len);
    w.write_all(w.ctx, reinterpret_cast<const char*>(st->carry), st->carry_len);
    explicit_bzero(st->carry, st->carry_len);
    st->carry_len = 0;
  }
}

void conn_drop(ConnTable& t, const void* key, const BrokerOps& b) {
  t.lines().forget(key);
  if (t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  if (b.prepare != nullptr && st->outbound_pending.load(std::memory_order_acquire)) b.prepare(b.ctx, st);
  {
    StateLock lk(st);
    if (st->carry_len > 0 && b.report) b.report(b.ctx, st, reinterpret_cast<const char*>(st->carry), st->carry_len);
    if (st->ngrants > 0 && b.report_grant_uses) b.report_grant_uses(b.ctx, st);
  }
  t.remove(key);
}

}  // namespace kz::preload
