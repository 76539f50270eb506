#include "kz/preload/outbound.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cstring>
#include <new>

#include "kz/preload/accept_encoding.h"
#include "kz/preload/basic_auth.h"
#include "kz/preload/h2.h"
#include "kz/preload/message_tracker.h"
#include "kz/wire/scanner.h"
#include "kz/wire/token.h"
#include "kz/preload/scratch.h"
#include "kz/preload/sigv4_resign.h"

namespace kz::preload {

namespace {

constexpr std::size_t kMaxEdits = 128;
constexpr std::size_t kMaxBasic = 4;
constexpr std::size_t kHeadScanLimit = 16384;   // Basic headers are searched for in this much of a head

struct TokenEdit {
  Edit e;
  bool is_token = true;   // false: a re-encoded Basic credential
};

// Length of the head at the start of [p, p+n): up to and including CRLFCRLF, or n.
std::size_t head_extent(const char* p, std::size_t n) {
  const char* end = find_head_end(p, n);
  return end != nullptr ? static_cast<std::size_t>(end - p) + 4 : n;
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

// A token at a byte that belongs to no request is reported as unidentified and never
// swapped (outbound.h).
bool bind_request(const OutboundOptions& opt, ConnState* st, const char* in, std::size_t pos) {
  if (opt.requests == nullptr) return true;
  if (st == nullptr) return false;
  st->request_flags = 0;
  const RequestRef* ref = opt.requests->tr->at(pos);
  if (ref == nullptr) {
    st->method_len = st->path_len = st->http_host_len = 0;
    st->request_flags = wire::kFlagUnidentified;
    return false;
  }
  if (ref->kind == RequestRef::Kind::InBuffer) {
    st->set_request_line(in + ref->method.pos, ref->method.len, in + ref->target.pos, ref->target.len);
    // An absolute-form target too long to send along: its authority cannot be checked.
    const bool unchecked = ref->target.len > sizeof st->path && in[ref->target.pos] != '/';
    st->set_request_host(in + ref->host.pos, ref->host.len, unchecked ? 2 : ref->host_count);
  } else {
    const TrackedRequest& c = opt.requests->from->cur;
    st->set_request_line(c.method, c.method_len, c.target, c.target_len);
    st->set_request_host(c.host, c.host_len, c.host_count);
  }
  return true;
}

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

  // Raw storage: Edit's members have initialisers, and 128 of them per write cost more
  // than the rest of a small request's rewrite. Each element is constructed when added.
  alignas(TokenEdit) unsigned char edits_raw[kMaxEdits * sizeof(TokenEdit)];
  auto* edits = reinterpret_cast<TokenEdit*>(edits_raw);
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
    if (ext == wire::marker_at(in + t, n - t) && !at_end) continue;   // a marker and no token text
    if (k == kMaxEdits) {
      if (b.report) b.report(b.ctx, st, in + t, ext);
      ++r.reported;
      continue;
    }
    if (!bind_request(opt, st, in, t)) {
      if (b.report) b.report(b.ctx, st, in + t, ext);
      ++r.reported;
      continue;
    }
    std::size_t vl = 0, tl = 0;
    const wire::Decision d = b.swap(b.ctx, st, in + t, ext, at_end, values + vused, ext, &vl, &tl);
    if (d == wire::Decision::Allow && vl > 0 && vl <= ext) {
      new (&edits[k]) TokenEdit{Edit{t, ext, values + vused, vl, false}, true};
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
        if (!bind_request(opt, st, in, spans[s].pos)) {
          report_tokens_in(reinterpret_cast<const char*>(dec), dlen, b, st, &r.reported);
          explicit_bzero(tmp, dlen);
          continue;
        }
        char* swapped = tmp + dlen;
        std::size_t inside = 0;
        const std::size_t sl = swap_inside(reinterpret_cast<char*>(dec), dlen, swapped, b, st, &inside);
        if (sl > 0) {
          const long el = b64_encode(reinterpret_cast<unsigned char*>(swapped), sl, values + vused, spans[s].len);
          if (el > 0) {
            new (&edits[k]) TokenEdit{Edit{spans[s].pos, spans[s].len, values + vused, static_cast<std::size_t>(el), false},
                                      false};
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
  alignas(Edit) unsigned char plain_raw[kMaxEdits * sizeof(Edit)];
  auto* plain = reinterpret_cast<Edit*>(plain_raw);
  for (std::size_t i = 0; i < k; ++i) new (&plain[i]) Edit(edits[i].e);
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

// The last write ended with `have` bytes of a marker (`tail`, the longest such fragment).
// Does this one go on with it? A marker that overlaps itself ("kztok" then "ztokqx...")
// may start at any fragment that is a suffix of `tail`, not only at its start: each is
// tried, longest first. When one completes a marker, the token (as far as this write has
// it) is reported: it went out unswapped, in pieces. Returns the marker bytes matched so
// far when this write is itself only a further piece of a marker (so a marker spread over
// 3+ writes is still seen; `tail` then holds them), else 0.
std::size_t continue_split_prefix(const char* buf, std::size_t len, char* tail, std::size_t have,
                                  const BrokerOps& b, ConnState* st) {
  char tok[wire::kMaxTokenLen];
  std::memcpy(tok, tail, have);
  std::size_t n = have;
  for (std::size_t i = 0; i < len && n < wire::kMaxMarkerLen + wire::kMaxMarkerLen; ++i) tok[n++] = buf[i];
  for (std::size_t s = 0; s < have; ++s) {
    if (!wire::is_marker_fragment(tok + s, have - s)) continue;
    if (wire::marker_at(tok + s, n - s) == 0) continue;
    std::size_t m = n;
    for (std::size_t i = n - have; i < len && m < sizeof tok; ++i) tok[m++] = buf[i];
    if (b.report) b.report(b.ctx, st, tok + s, wire::token_extent(tok + s, m - s));
    return 0;
  }
  if (n != have + len) return 0;
  for (std::size_t s = 0; s < have; ++s)
    if (wire::is_marker_fragment(tok + s, n - s)) {
      std::memmove(tail, tok + s, n - s);
      return n - s;
    }
  return 0;
}

}  // namespace

namespace {

// Sends [p, p+n) and, once sent, makes `next` the connection's tracker state. A head
// left incomplete (not held) means the tracker lost the stream: Lost from now on.
// On a connection that carries a value, every request head sent is queued for the
// inbound stream (ConnState::requests), in order: `p` is the tracked buffer.
void commit_tracker(ConnState* st, const char* p, const MessageTracker& next, const TrackResult& tr) {
  st->tracker = next;
  if (tr.head_incomplete) st->tracker.phase = MessageTracker::Phase::Lost;
  if (st->nfps == 0) return;
  for (std::size_t i = 0; i < tr.nrefs; ++i) {
    const RequestRef& ref = tr.refs[i];
    if (ref.kind != RequestRef::Kind::InBuffer) continue;
    const char* m = p + ref.method.pos;
    RequestKind k = RequestKind::Other;
    if (ref.method.len == 4 && std::memcmp(m, "HEAD", 4) == 0) k = RequestKind::Head;
    else if (ref.method.len == 7 && std::memcmp(m, "CONNECT", 7) == 0) k = RequestKind::Connect;
    st->push_request(k);
  }
  // Requests may follow that the tracker does not see: responses past the ring are unknown.
  if (st->tracker.phase == MessageTracker::Phase::Lost) st->requests_unknown = true;
}

// Tracks [p, p+n) from the connection's state and commits the result (bytes that go out
// with no rewrite: a flushed fragment).
void track_sent(ConnState* st, const char* p, std::size_t n) {
  MessageTracker next;
  TrackResult tr;
  track(st->tracker, p, n, &next, &tr);
  commit_tracker(st, p, next, tr);
}

// Runs b.prepare and looks key's state up again: prepare may complete a handshake, and
// the library's own calls on the way (SSL_clear through the PLT, which the shim hooks)
// can drop the state, so the pointer from before must not be used after it.
ConnState* prepare_then_find(ConnTable& t, const void* key, const BrokerOps& b, ConnState* st) {
  b.prepare(b.ctx, st);
  return t.count() > 0 ? t.find(key) : nullptr;
}

// Reports every token of [p, p+n) as unidentified (no state to tell their requests).
void report_unidentified(const char* p, std::size_t n, const BrokerOps& b, ConnState* st) {
  if (st != nullptr) {
    st->method_len = st->path_len = st->http_host_len = 0;
    st->request_flags = wire::kFlagUnidentified;
  }
  std::size_t reported = 0;
  report_tokens_in(p, n, b, st, &reported);
}

}  // namespace

WriteOutcome outbound_write(ConnTable& t, const void* key, const char* buf, std::size_t len, bool fixup_lengths,
                            const BrokerOps& b, const WriteOps& w) {
  if (len == 0 || buf == nullptr) return WriteOutcome::PassThrough;
  // One scan for the prefix, a look at the last 6 bytes, a few compares at the start.
  const std::size_t first = wire::find_token_prefix(buf, len);
  const std::size_t trailing = first == len ? wire::trailing_prefix_len(buf, len) : 0;
  const bool head = looks_like_request_start(buf, len);
  // Basic credentials live in the head: look only there (the body may be large).
  const bool basic = head && may_hold_basic(buf, head_extent(buf, len < kHeadScanLimit ? len : kHeadScanLimit));
  ConnState* st = settle_handshake(t, key, b, t.count() > 0 ? t.find(key) : nullptr);
  const bool pending = st != nullptr && st->outbound_pending.load(std::memory_order_acquire);

  // This write may ask the broker (a token, a Basic credential, something held): what
  // the broker needs to know about the connection is gathered before any lock.
  // A SigV4-signed request head asks the broker too (sigv4_resign.h).
  const bool sigv4 = head && b.sign != nullptr &&
                     may_be_sigv4(buf, head_extent(buf, len < kHeadScanLimit ? len : kHeadScanLimit));
  if (b.prepare != nullptr && (first != len || basic || pending || sigv4)) st = prepare_then_find(t, key, b, st);
  if (st == nullptr) {
    // The connection's first write: from here on its requests are tracked (the tracker
    // must see every byte, so the state exists before any token does). A table that
    // was ever full makes new connections start Lost: one of them may have written
    // untracked bytes before it got its state.
    st = t.find_or_create(key);
    if (st == nullptr) {
      t.note_untracked();
      if (first == len) return WriteOutcome::PassThrough;
      report_unidentified(buf, len, b, nullptr);   // no state: no token's request is known
      return WriteOutcome::PassThrough;
    }
  }

  StateLock lk(st);
  // HTTP/2: a connection whose first write is the client preface goes through the h2
  // engine from then on (h2.h). Without memory for it, its framing is not followed and
  // nothing on it is swapped (the HTTP/1.1 tracker is Lost).
  // A first write that is only the start of the preface is held (not sent) until the
  // next write tells; anything else that started like it goes on as HTTP/1.1 bytes.
  if (st->tracker_fresh && st->h2 == nullptr && !t.untracked()) {
    const std::size_t have = st->preface_have, need = kH2PrefaceLen - have;
    const std::size_t k = len < need ? len : need;
    if (std::memcmp(buf, kH2Preface + have, k) == 0) {
      if (k < need) {
        st->preface_have = static_cast<std::uint8_t>(have + k);
        return WriteOutcome::Consumed;
      }
      st->preface_have = 0;
      st->h2 = h2_conn_new();
      if (st->h2 != nullptr) {
        st->tracker_fresh = false;
        if (have > 0 && h2_write(st, kH2Preface, have, b, w) == WriteOutcome::Failed) return WriteOutcome::Failed;
        return h2_write(st, buf, len, b, w);
      }
      st->tracker.phase = MessageTracker::Phase::Lost;
    }
    if (st->preface_have > 0) {   // the held bytes go first, as a carried fragment does
      std::memcpy(st->carry, kH2Preface, st->preface_have);
      st->carry_len = st->preface_have;
      st->preface_have = 0;
    }
  }
  if (st->h2 != nullptr) return h2_write(st, buf, len, b, w);
  if (st->tracker_fresh) {
    st->tracker_fresh = false;
    if (t.untracked()) st->tracker.phase = MessageTracker::Phase::Lost;
  }
  if (st->prev_trailing > 0) {
    // A write shorter than the prefix is checked, tracked and sent from one copy.
    char small[wire::kMaxMarkerLen];
    const bool tiny = len < sizeof small;
    if (tiny) std::memcpy(small, buf, len);
    const std::size_t still = continue_split_prefix(tiny ? small : buf, len, st->prev_tail, st->prev_trailing, b, st);
    st->prev_trailing = static_cast<std::uint8_t>(still);
    if (still > 0 && tiny) {   // only more of the prefix
      track_sent(st, small, len);
      return w.write_all(w.ctx, small, len) ? WriteOutcome::Consumed : WriteOutcome::Failed;
    }
  }
  // Nothing to look at but body bytes the tracker counts without reading them, or a
  // stream it has lost: the caller's own buffer goes out.
  if (first == len && trailing == 0 && !st->has_outbound_state()) {
    MessageTracker& mt = st->tracker;
    if (mt.phase == MessageTracker::Phase::Lost) return WriteOutcome::PassThrough;
    if (mt.phase == MessageTracker::Phase::Body && mt.remaining >= len) {
      mt.remaining -= len;
      if (mt.remaining == 0) mt.phase = MessageTracker::Phase::Head;
      return WriteOutcome::PassThrough;
    }
  }

  // Assemble the input: a held request or a held token fragment, then this write. Copy
  // once: everything below (framing, the broker's decision, the rewrite, the send) reads
  // only the copy, never the caller's buffer again, which another thread of the program
  // may change while this call runs (the bytes checked must be the bytes sent).
  const char* in = nullptr;
  std::size_t n = 0;
  Scratch* combo = nullptr;
  alignas(Scratch) unsigned char combo_mem[sizeof(Scratch)];
  bool from_held = false;
  if (st->held_len > 0) {
    void* hp = st->held;
    if (!scratch_grow(&hp, &st->held_cap, st->held_len, st->held_len + len)) {
      // Cannot grow: send the held bytes as they are (fail closed) before this write.
      report_unidentified(st->held, st->held_len, b, st);
      const bool ok = w.write_all(w.ctx, st->held, st->held_len);
      track_sent(st, st->held, st->held_len);
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
  }
  if (in == nullptr) {
    const std::size_t pre = st->carry_len;
    combo = new (combo_mem) Scratch(pre + len);
    if (!*combo) {
      // No memory for the copy: nothing is swapped (fail closed); the framing of what
      // goes out is not followed any more.
      combo->~Scratch();
      report_unidentified(buf, len, b, st);
      st->tracker.phase = MessageTracker::Phase::Lost;
      if (st->nfps > 0) st->requests_unknown = true;
      if (pre > 0 && !w.write_all(w.ctx, reinterpret_cast<const char*>(st->carry), pre)) return WriteOutcome::Failed;
      explicit_bzero(st->carry, pre);
      st->carry_len = 0;
      return WriteOutcome::PassThrough;
    }
    std::memcpy(combo->get(), st->carry, pre);
    std::memcpy(combo->get() + pre, buf, len);
    explicit_bzero(st->carry, pre);
    st->carry_len = 0;
    in = combo->get();
    n = pre + len;
  }

  // Which request each byte belongs to.
  MessageTracker next;
  TrackResult tr;
  track(st->tracker, in, n, &next, &tr);
  RequestLookup lookup{&tr, &st->tracker};

  OutboundOptions o;
  o.fixup_lengths = fixup_lengths;
  o.in_chunked_body = st->chunked_body;
  o.requests = &lookup;
  // AWS SigV4 requests get the real key's signature over the token's before any token
  // is swapped (sigv4_resign.h). `in` is this call's own copy (the combo scratch or the
  // held bytes), so editing it in place edits exactly what is sent.
  bool hold_for_sign = false;
  if (b.sign != nullptr && !tr.head_incomplete)   // resign_sigv4 looks for the algorithm itself
    hold_for_sign = resign_sigv4(const_cast<char*>(in), n, tr, o, b, st).hold;
  bool ok = true;
  WriteOutcome outcome = WriteOutcome::Consumed;
  {
    Scratch out(n), work(outbound_work_size(n));
    OutboundResult r;
    // A head the buffer ends inside: its request (and Host) come with a later write, so
    // the bytes wait for it (a client that reads first gets them sent, unidentified).
    // So does a signed request whose body's hash is needed and not all here.
    const bool hold_head = (tr.head_incomplete || hold_for_sign) && n <= o.hold_limit;
    if (hold_head) {
      r.hold_request = true;
    } else if (out && work) {
      r = rewrite_outbound(in, n, o, b, st, out.get(), work.get());
    } else {
      report_unidentified(in, n, b, st);   // no memory: everything unchanged (fail closed)
      r.out_len = n;
    }
    if (r.hold_request && !from_held) {
      void* hp = st->held;
      if (scratch_grow(&hp, &st->held_cap, 0, n)) {
        st->held = static_cast<char*>(hp);
        std::memcpy(st->held, in, n);
        st->held_len = n;
      } else if (out && work) {
        const bool head_incomplete = tr.head_incomplete;
        o.allow_hold = false;
        tr.head_incomplete = false;
        if (head_incomplete) {   // cannot wait for the rest of the head: its tokens are unidentified
          track(st->tracker, in, n, &next, &tr);
          next.phase = MessageTracker::Phase::Lost;
        }
        if (hold_for_sign) resign_sigv4(const_cast<char*>(in), n, tr, o, b, st);   // without the body: refused
        r = rewrite_outbound(in, n, o, b, st, out.get(), work.get());
      } else {
        r = OutboundResult{};
        r.out_len = n;
        report_unidentified(in, n, b, st);
      }
    }
    if (!r.hold_request) {
      st->chunked_body = r.chunked_next;
      if (r.carry_len > 0) {
        std::memcpy(st->carry, in + n - r.carry_len, r.carry_len);
        st->carry_len = r.carry_len;
        // The tracker follows what is sent: the carried bytes come again with the next write.
        track(st->tracker, in, n - r.carry_len, &next, &tr);
      } else {
        const std::size_t tl = wire::trailing_prefix_len(in, n);
        st->prev_trailing = static_cast<std::uint8_t>(tl);
        std::memcpy(st->prev_tail, in + n - tl, tl);
      }
      commit_tracker(st, in, next, tr);
      const char* send = r.changed ? out.get() : in;
      if (r.out_len > 0) ok = w.write_all(w.ctx, send, r.out_len);
      outcome = ok ? WriteOutcome::Consumed : WriteOutcome::Failed;
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
  if (st != nullptr) st = settle_handshake(t, key, b, st);
  if (st == nullptr) return;
  if (b.prepare != nullptr && st->outbound_pending.load(std::memory_order_acquire)) {
    st = prepare_then_find(t, key, b, st);
    if (st == nullptr) return;
  }
  StateLock lk(st);
  if (st->h2 != nullptr) {   // an incomplete frame waits for its rest; what the read side owes goes (h2.h)
    h2_flush(st, w);
    return;
  }
  if (st->preface_have > 0) {
    // A client reads after the start of a preface: it goes out; the framing that
    // follows is not known (nothing on the connection is swapped).
    w.write_all(w.ctx, kH2Preface, st->preface_have);
    st->preface_have = 0;
    st->tracker_fresh = false;
    st->tracker.phase = MessageTracker::Phase::Lost;
  }
  st->prev_trailing = 0;
  if (st->held_len > 0) {
    // The client reads before the request is complete: rewrite what is there without
    // waiting (same-length swaps still happen; framing that cannot follow is reported;
    // a head still incomplete is sent as it is, its tokens unidentified).
    MessageTracker next;
    TrackResult tr;
    track(st->tracker, st->held, st->held_len, &next, &tr);
    RequestLookup lookup{&tr, &st->tracker};
    OutboundOptions o;
    o.fixup_lengths = true;   // a request is held only to fix its lengths, or for its head
    o.allow_hold = false;
    o.allow_carry = false;
    o.in_chunked_body = st->chunked_body;
    o.requests = &lookup;
    Scratch out(st->held_len), work(outbound_work_size(st->held_len));
    // A signed request held for its body: re-signed now or refused (its body is not all here).
    if (b.sign != nullptr && !tr.head_incomplete) resign_sigv4(st->held, st->held_len, tr, o, b, st);
    if (out && work) {
      const OutboundResult r = rewrite_outbound(st->held, st->held_len, o, b, st, out.get(), work.get());
      w.write_all(w.ctx, r.changed ? out.get() : st->held, r.out_len);
      st->chunked_body = r.chunked_next;
    } else {
      report_unidentified(st->held, st->held_len, b, st);
      w.write_all(w.ctx, st->held, st->held_len);
      st->chunked_body = false;   // the body's chunk boundary is lost
    }
    commit_tracker(st, st->held, next, tr);
    scratch_free(st->held, st->held_cap);
    st->held = nullptr;
    st->held_len = st->held_cap = 0;
  }
  if (st->carry_len > 0) {
    // A token the last write ended inside, never completed: out unchanged, reported.
    if (b.report) b.report(b.ctx, st, reinterpret_cast<const char*>(st->carry), st->carry_len);
    w.write_all(w.ctx, reinterpret_cast<const char*>(st->carry), st->carry_len);
    track_sent(st, reinterpret_cast<const char*>(st->carry), st->carry_len);
    explicit_bzero(st->carry, st->carry_len);
    st->carry_len = 0;
  }
}

void conn_unfollow(ConnTable& t, const void* key, const char* buf, std::size_t len, const BrokerOps& b) {
  // The reports below ask the broker: what it needs is gathered before the lock.
  if (b.prepare != nullptr && wire::find_token_prefix(buf, len) != len) b.prepare(b.ctx, nullptr);
  ConnState* st = t.find_or_create(key);
  if (st == nullptr) {
    t.note_untracked();
    report_unidentified(buf, len, b, nullptr);
    return;
  }
  StateLock lk(st);
  st->unfollowed = true;
  st->tracker_fresh = false;
  st->tracker.phase = MessageTracker::Phase::Lost;
  if (st->nfps > 0) st->requests_unknown = true;
  report_unidentified(buf, len, b, st);
}

bool conn_unfollowed(ConnTable& t, const void* key) {
  ConnState* st = t.count() > 0 ? t.find(key) : nullptr;
  if (st == nullptr) return false;
  StateLock lk(st);
  return st->unfollowed;
}

// Every write asks, state or not: a connection's first write can be written under its
// new state's lock (a carried fragment, the HTTP/2 preface). One accessor call.
ConnState* settle_handshake(ConnTable& t, const void* key, const BrokerOps& b, ConnState* st) {
  if (b.handshake_unstarted == nullptr || b.prepare == nullptr || !b.handshake_unstarted(b.ctx)) return st;
  return prepare_then_find(t, key, b, st);
}

void conn_drop(ConnTable& t, const void* key, const BrokerOps& b) {
  t.lines().forget(key);
  if (t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  if (b.prepare != nullptr && st->outbound_pending.load(std::memory_order_acquire)) {
    st = prepare_then_find(t, key, b, st);
    if (st == nullptr) return;
  }
  {
    StateLock lk(st);
    if (st->carry_len > 0 && b.report) b.report(b.ctx, st, reinterpret_cast<const char*>(st->carry), st->carry_len);
    if (st->ngrants > 0 && b.report_grant_uses) b.report_grant_uses(b.ctx, st);
  }
  t.remove(key);
}

}  // namespace kz::preload
