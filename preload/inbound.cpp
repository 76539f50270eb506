#include "kz/preload/inbound.h"
#include "kz/preload/find_bytes.h"

#include "kz/preload/h2.h"

#include <string.h>

#include <cstring>

#include "kz/preload/seal_response.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/value_forms.h"

namespace kz::preload {

namespace {

constexpr std::size_t kMaxHits = 64;

struct Hit {
  std::size_t off;
  std::size_t fp;
};

// Every window of [v, v+n) that matches a fingerprint, at most kMaxHits, sorted by offset.
// One rolling hash per distinct window length (the forms of a value share few lengths),
// all advanced in the same pass. Prints that carry the quick filter (wire::fq_hash, mod
// 2^64) roll that; a filter match is confirmed with the mod 2^61-1 hash of the window
// before it counts. Prints without one roll the mod 2^61-1 hash itself.
std::size_t find_hits(const unsigned char* v, std::size_t n, const Fingerprint* fps, std::size_t nfps, Hit* hits) {
  if (nfps > kMaxFingerprints) nfps = kMaxFingerprints;
  struct Group {
    std::size_t len;
    bool quick;
    std::uint64_t base, top, h;
    std::uint32_t first, count;   // members: order[first, first + count)
  };
  Group groups[kMaxFingerprints];
  std::size_t order[kMaxFingerprints];
  std::size_t ng = 0, no = 0;
  bool placed[kMaxFingerprints] = {};
  for (std::size_t i = 0; i < nfps; ++i) {
    if (placed[i]) continue;
    const std::size_t len = fps[i].len;
    if (len == 0 || len > wire::kMaxData || len > n) continue;   // no window that long (the usual small read)
    const bool quick = fps[i].quick_base != 0;
    const std::uint64_t base = quick ? fps[i].quick_base : fps[i].base;
    Group g{len, quick, base, 0, 0, static_cast<std::uint32_t>(no), 0};
    for (std::size_t j = i; j < nfps; ++j) {
      const bool jq = fps[j].quick_base != 0;
      if (!placed[j] && fps[j].len == len && jq == quick && (jq ? fps[j].quick_base : fps[j].base) == base) {
        placed[j] = true;
        order[no++] = j;
        ++g.count;
      }
    }
    g.top = quick ? wire::fq_pow(base, len - 1) : wire::fp_pow(base, len - 1);
    g.h = quick ? wire::fq_hash(v, len, base) : wire::fp_hash(v, len, base);
    groups[ng++] = g;
  }
  std::size_t nh = 0;
  std::size_t last_end[kMaxFingerprints] = {};
  auto check = [&](const Group& g, std::size_t pos) {
    for (std::uint32_t m = 0; m < g.count; ++m) {
      const std::size_t j = order[g.first + m];
      if (g.h != (g.quick ? fps[j].quick : fps[j].hash) || (last_end[j] > 0 && pos < last_end[j]) || nh == kMaxHits)
        continue;
      if (g.quick && wire::fp_hash(v + pos, g.len, fps[j].base) != fps[j].hash) continue;
      last_end[j] = pos + g.len;
      hits[nh++] = Hit{pos, j};
    }
  };
  for (std::size_t k = 0; k < ng; ++k) {
    Group& g = groups[k];
    const std::size_t last = n - g.len;   // the last window's start
    if (g.quick) {
      // The hot loop: two multiplies and a compare a byte (wrapping arithmetic).
      const std::uint64_t b = g.base, top = g.top;
      std::uint64_t h = g.h;
      // Up to 4 members compared inline (a value's forms of one length are at most 2);
      // a larger group checks every window.
      std::uint64_t w[4];
      for (std::uint32_t m = 0; m < 4; ++m) w[m] = fps[order[g.first + (m < g.count ? m : 0)]].quick;
      const bool every = g.count > 4;
      for (std::size_t pos = 0;; ++pos) {
        if (every || h == w[0] || h == w[1] || h == w[2] || h == w[3]) {
          g.h = h;
          check(g, pos);
        }
        if (pos == last) break;
        h = (h - v[pos] * top) * b + v[pos + g.len];
      }
    } else {
      for (std::size_t pos = 0;; ++pos) {
        check(g, pos);
        if (pos == last) break;
        g.h = wire::fp_addmod(g.h, wire::kFingerprintModulus - wire::fp_mulmod(v[pos], g.top));
        g.h = wire::fp_addmod(wire::fp_mulmod(g.h, g.base), v[pos + g.len]);
      }
    }
  }
  for (std::size_t a = 1; a < nh; ++a)
    for (std::size_t b = a; b > 0 && hits[b].off < hits[b - 1].off; --b) {
      const Hit t = hits[b];
      hits[b] = hits[b - 1];
      hits[b - 1] = t;
    }
  return nh;
}

}  // namespace

std::size_t longest_print(const ConnState& st) {
  std::size_t m = 0;
  for (std::size_t i = 0; i < st.nfps && i < kMaxFingerprints; ++i)
    if (st.fps[i].len <= wire::kMaxData && st.fps[i].len > m) m = st.fps[i].len;
  return m;
}

namespace {

// ---- HTTP/1.1 response heads ----

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool name_is(const unsigned char* p, std::size_t n, const char* name) {
  const std::size_t k = std::strlen(name);
  if (n != k) return false;
  for (std::size_t i = 0; i < k; ++i)
    if (lower(static_cast<char>(p[i])) != name[i]) return false;
  return true;
}

bool contains_ci(const unsigned char* p, std::size_t n, const char* word) {
  const std::size_t k = std::strlen(word);
  for (std::size_t i = 0; i + k <= n; ++i) {
    std::size_t j = 0;
    while (j < k && lower(static_cast<char>(p[i + j])) == word[j]) ++j;
    if (j == k) return true;
  }
  return false;
}

struct ResponseHead {
  bool ok = false;
  int status = 0;
  bool chunked = false;
  bool has_length = false;
  std::uint64_t length = 0;
  const unsigned char* coding = nullptr;   // Content-Encoding other than identity
  std::size_t coding_len = 0;
};

ResponseHead parse_response_head(const unsigned char* p, std::size_t n) {
  ResponseHead h;
  if (n < 12 || std::memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return h;
  for (std::size_t i = 9; i < 12; ++i) {
    if (p[i] < '0' || p[i] > '9') return h;
    h.status = h.status * 10 + (p[i] - '0');
  }
  h.ok = true;
  std::size_t i = 0;
  while (i < n && p[i] != '\n') ++i;   // past the status line
  ++i;
  while (i < n) {
    std::size_t e = i;
    while (e < n && p[e] != '\n') ++e;
    std::size_t le = e;
    if (le > i && p[le - 1] == '\r') --le;
    if (le == i) break;   // the empty line
    std::size_t colon = i;
    while (colon < le && p[colon] != ':') ++colon;
    if (colon < le) {
      std::size_t vb = colon + 1, ve = le;
      while (vb < ve && (p[vb] == ' ' || p[vb] == '\t')) ++vb;
      while (ve > vb && (p[ve - 1] == ' ' || p[ve - 1] == '\t')) --ve;
      const unsigned char* name = p + i;
      const std::size_t nl = colon - i;
      if (name_is(name, nl, "transfer-encoding")) {
        if (contains_ci(p + vb, ve - vb, "chunked")) h.chunked = true;
      } else if (name_is(name, nl, "content-length")) {
        std::uint64_t v = 0;
        bool digits = vb < ve;
        for (std::size_t k = vb; k < ve && digits; ++k) {
          if (p[k] < '0' || p[k] > '9' || v > (std::uint64_t{1} << 56)) digits = false;
          else v = v * 10 + (p[k] - '0');
        }
        if (digits) {
          h.has_length = true;
          h.length = v;
        }
      } else if (name_is(name, nl, "content-encoding")) {
        if (!(ve - vb == 8 && name_is(p + vb, 8, "identity")) && ve > vb) {
          h.coding = p + vb;
          h.coding_len = ve - vb;
        }
      }
    }
    i = e + 1;
  }
  return h;
}

int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ---- The stream ----

struct Pass {
  InboundStream& s;
  ConnState& st;
  const BrokerOps& b;
};

// Scans the data bytes of [s.ready, end) and releases: all of them (final) or all but the
// last (longest form - 1) data bytes.
void release(Pass& x, std::size_t end, bool final) {
  InboundStream& s = x.s;
  if (!final && x.st.seal_secret != 0) return;   // a token endpoint's answer: held whole (seal_response.h)
  std::size_t n = 0;
  for (std::size_t k = 0; k < s.nsegs; ++k) {
    const std::size_t from = s.seg_from[k] > s.ready ? s.seg_from[k] : s.ready;
    const std::size_t to = s.seg_to[k] < end ? s.seg_to[k] : end;
    if (from >= to) continue;
    std::memcpy(s.view + n, s.buf + from, to - from);
    n += to - from;
  }
  bool changed = n > 0 && x.st.nfps > 0 && redact_buffer(s.view, n, x.st.fps, x.st.nfps, x.b, &x.st) > 0;
  if (n > 0 && x.st.seal_secret != 0) {
    if (!seal_response(s.view, n, &x.st, x.b)) {
      s.failed = true;   // a token the program must not see: nothing of this response goes
      return;
    }
    changed = true;
  }
  if (changed) {
    std::size_t v = 0;   // write the replacements back where the bytes came from
    for (std::size_t k = 0; k < s.nsegs; ++k) {
      const std::size_t from = s.seg_from[k] > s.ready ? s.seg_from[k] : s.ready;
      const std::size_t to = s.seg_to[k] < end ? s.seg_to[k] : end;
      if (from >= to) continue;
      std::memcpy(s.buf + from, s.view + v, to - from);
      v += to - from;
    }
  }
  std::size_t upto = s.ready;
  if (final) {
    upto = end;
  } else {
    const std::size_t keep = longest_print(x.st) > 0 ? longest_print(x.st) - 1 : 0;
    if (n > keep) {
      // The buffer offset of data byte (n - keep): everything before it is final.
      std::size_t want = n - keep, seen = 0;
      for (std::size_t k = 0; k < s.nsegs; ++k) {
        const std::size_t from = s.seg_from[k] > s.ready ? s.seg_from[k] : s.ready;
        const std::size_t to = s.seg_to[k] < end ? s.seg_to[k] : end;
        if (from >= to) continue;
        if (seen + (to - from) >= want) {
          upto = from + (want - seen);
          break;
        }
        seen += to - from;
      }
    }
  }
  if (upto <= s.ready) return;
  s.ready = static_cast<std::uint32_t>(upto);
  // Drop the data runs that are final now.
  std::size_t w = 0;
  for (std::size_t k = 0; k < s.nsegs; ++k) {
    if (s.seg_to[k] <= upto) continue;
    s.seg_from[w] = s.seg_from[k] > upto ? s.seg_from[k] : static_cast<std::uint32_t>(upto);
    s.seg_to[w] = s.seg_to[k];
    ++w;
  }
  s.nsegs = static_cast<std::uint32_t>(w);
}

void add_data(Pass& x, std::size_t from, std::size_t to) {
  InboundStream& s = x.s;
  if (from >= to) return;
  if (s.nsegs > 0 && s.seg_to[s.nsegs - 1] == from) {
    s.seg_to[s.nsegs - 1] = static_cast<std::uint32_t>(to);
    return;
  }
  // Too many data runs (a body of tiny chunks): what came before is scanned and released
  // now; a value straddling this point is found only if it lies within one read. (Not a
  // token endpoint's answer, which is sealed whole or not at all.)
  if (s.nsegs == kInboundSegments && x.st.seal_secret != 0) {
    s.failed = true;
    return;
  }
  if (s.nsegs == kInboundSegments) release(x, from, true);
  s.seg_from[s.nsegs] = static_cast<std::uint32_t>(from);
  s.seg_to[s.nsegs] = static_cast<std::uint32_t>(to);
  ++s.nsegs;
}

void message_end(Pass& x, std::size_t at) {
  release(x, at, true);
  x.s.phase = InPhase::Head;
  x.s.msg_start = static_cast<std::uint32_t>(at);
}

// The stream stops following HTTP/1.1. `switched`: the response said so (101, a
// CONNECT's 2xx): what follows is another protocol, scanned per read. Else the stream
// lost the response framing (bytes that are not a response head where one must start,
// a head or chunk it cannot parse or hold): on a connection that carries a value the
// read fails, since a value split across reads would not be seen there (and the
// framing is lost only when the stream and the server disagree about where a response
// ends, which an agent could arrange to release a value in halves).
void go_opaque(Pass& x, bool switched = false) {
  InboundStream& s = x.s;
  if (x.st.seal_secret != 0 || (!switched && x.st.nfps > 0)) {   // not sealed, not read
    s.failed = true;
    return;
  }
  s.phase = InPhase::Opaque;
  // What is buffered is released as it is, scanned as one piece.
  if (s.len > s.ready && x.st.nfps > 0) redact_buffer(s.buf + s.ready, s.len - s.ready, x.st.fps, x.st.nfps, x.b, &x.st);
  s.nsegs = 0;
  s.ready = s.parsed = s.len;
}


// Runs the framing parser over [s.parsed, s.len).
void advance(Pass& x) {
  InboundStream& s = x.s;
  std::size_t p = s.parsed;
  while (p < s.len && !s.failed) {
    switch (s.phase) {
      case InPhase::Opaque:
        go_opaque(x, true);
        return;
      case InPhase::Head: {
        const unsigned char* h = s.buf + s.msg_start;
        const std::size_t avail = s.len - s.msg_start;
        const std::size_t cmp = avail < 5 ? avail : 5;
        if (std::memcmp(h, "HTTP/", cmp) != 0) return go_opaque(x);
        const std::size_t from = p >= s.msg_start + 3 ? p - 3 : s.msg_start;
        const unsigned char* e = find_head_end(s.buf + from, s.len - from);
        if (e == nullptr) {
          if (avail > kInboundCap - 4096) return go_opaque(x);   // a head we cannot hold whole
          p = s.len;
          break;
        }
        const std::size_t head_end = static_cast<std::size_t>(static_cast<const unsigned char*>(e) - s.buf) + 4;
        const ResponseHead r = parse_response_head(h, head_end - s.msg_start);
        if (!r.ok) return go_opaque(x);
        add_data(x, s.msg_start, head_end);
        p = head_end;
        // A final response answers the oldest request not answered yet (a 1xx other
        // than 101 precedes it). None known: one sent before the connection carried a
        // value (framed as a GET's), unless requests went out that the ring could not
        // follow: then the stream cannot tell this response's framing.
        RequestKind kind = RequestKind::Other;
        if (r.status >= 200 || r.status == 101) {
          if (!x.st.pop_request(&kind) && x.st.requests_unknown) return go_opaque(x);
        }
        const bool no_body = (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304 ||
                             kind == RequestKind::Head;
        if (r.status == 101 || (kind == RequestKind::Connect && r.status >= 200 && r.status < 300)) {
          release(x, head_end, true);
          s.parsed = static_cast<std::uint32_t>(head_end);
          return go_opaque(x, true);   // another protocol (or a tunnel) follows
        }
        if (no_body) {
          message_end(x, head_end);
          break;
        }
        if (r.coding != nullptr) {
          // Compressed bytes may hide a value from the scan: the program gets none of them.
          s.failed = true;
          if (x.b.report_coded) {
            const std::size_t cl = r.coding_len < 64 ? r.coding_len : 64;
            x.b.report_coded(x.b.ctx, &x.st, reinterpret_cast<const char*>(r.coding), cl);
          }
          return;
        }
        if (r.chunked) {
          s.phase = InPhase::ChunkSize;
          s.chunk_size = 0;
          s.line_len = 0;
          s.in_ext = s.digits = false;
        } else if (r.has_length) {
          s.remaining = r.length;
          if (r.length == 0) message_end(x, head_end);
          else s.phase = InPhase::Length;
        } else {
          s.phase = InPhase::UntilClose;
        }
        break;
      }
      case InPhase::Length:
      case InPhase::ChunkData: {
        const std::size_t take = s.len - p < s.remaining ? s.len - p : static_cast<std::size_t>(s.remaining);
        add_data(x, p, p + take);
        p += take;
        s.remaining -= take;
        if (s.remaining == 0) {
          if (s.phase == InPhase::Length) {
            message_end(x, p);
          } else {
            s.phase = InPhase::ChunkEnd;
            s.line_len = 0;
          }
        }
        break;
      }
      case InPhase::ChunkEnd: {
        const unsigned char c = s.buf[p++];
        if (c == '\n') {
          s.phase = InPhase::ChunkSize;
          s.chunk_size = 0;
          s.line_len = 0;
          s.in_ext = s.digits = false;
        } else if (c != '\r' || ++s.line_len > 1) {
          s.parsed = static_cast<std::uint32_t>(p);
          return go_opaque(x);
        }
        break;
      }
      case InPhase::ChunkSize: {
        const unsigned char c = s.buf[p++];
        if (c == '\n') {
          if (!s.digits) {
            s.parsed = static_cast<std::uint32_t>(p);
            return go_opaque(x);
          }
          if (s.chunk_size == 0) {
            s.phase = InPhase::Trailers;
            s.line_len = 0;
          } else {
            s.phase = InPhase::ChunkData;
            s.remaining = s.chunk_size;
          }
        } else if (c == ';') {
          s.in_ext = true;
        } else if (!s.in_ext && c != '\r' && c != ' ' && c != '\t') {
          const int d = hex_digit(c);
          if (d < 0 || s.chunk_size > (std::uint64_t{1} << 56)) {
            s.parsed = static_cast<std::uint32_t>(p);
            return go_opaque(x);
          }
          s.chunk_size = s.chunk_size * 16 + static_cast<std::uint64_t>(d);
          s.digits = true;
        }
        break;
      }
      case InPhase::Trailers: {
        const unsigned char c = s.buf[p++];
        if (c == '\n') {
          if (s.line_len == 0) message_end(x, p);
          s.line_len = 0;
        } else if (c != '\r') {
          ++s.line_len;
        }
        break;
      }
      case InPhase::UntilClose:
        add_data(x, p, s.len);
        p = s.len;
        break;
    }
  }
  s.parsed = static_cast<std::uint32_t>(p);
  if (s.phase != InPhase::Opaque && !s.failed) release(x, s.len, false);
}

}  // namespace

std::size_t redact_buffer(unsigned char* p, std::size_t n, const Fingerprint* fps, std::size_t nfps,
                          const BrokerOps& b, ConnState* st) {
  if (n == 0 || nfps == 0 || b.redact == nullptr) return 0;
  Hit hits[kMaxHits];
  const std::size_t nh = find_hits(p, n, fps, nfps, hits);
  std::size_t replaced = 0, done_to = 0;
  for (std::size_t h = 0; h < nh; ++h) {
    const Fingerprint& f = fps[hits[h].fp];
    if (hits[h].off < done_to) continue;   // overlaps a replacement already made
    if (b.redact(b.ctx, st, p + hits[h].off, f.len, f.form)) {
      ++replaced;
      done_to = hits[h].off + f.len;
    }
  }
  return replaced;
}

void inbound_after_read(ConnTable& t, const void* key, void* buf, std::size_t n, const BrokerOps& b) {
  if (n == 0 || t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  StateLock lk(st);
  if (st->nfps == 0 || st->h2 != nullptr) return;   // h2 reads go through h2_read
  redact_buffer(static_cast<unsigned char*>(buf), n, st->fps, st->nfps, b, st);
}

void stream_feed(ConnState& st, const unsigned char* p, std::size_t n, const BrokerOps& b) {
  InboundStream& s = st.in;
  if (n > stream_room(s)) n = stream_room(s);
  std::memcpy(s.buf + s.len, p, n);
  s.len += static_cast<std::uint32_t>(n);
  Pass x{s, st, b};
  advance(x);
  // Full and nothing final (a head or tail larger than the buffer): release what is there
  // rather than stall the connection.
  if (stream_room(s) == 0 && s.ready == 0) go_opaque(x);
}

void stream_end(ConnState& st, const BrokerOps& b) {
  InboundStream& s = st.in;
  if (s.failed) return;
  Pass x{s, st, b};
  if (s.phase == InPhase::Head && s.len > s.msg_start) add_data(x, s.msg_start, s.len);
  release(x, s.len, true);
  s.parsed = s.len;
  s.phase = InPhase::Head;
  s.msg_start = s.len;
}

std::size_t stream_take(InboundStream& s, unsigned char* out, std::size_t cap, bool peek) {
  const std::size_t k = s.ready < cap ? s.ready : cap;
  if (k == 0) return 0;
  std::memcpy(out, s.buf, k);
  if (peek) return k;
  const std::size_t rest = s.len - k;
  std::memmove(s.buf, s.buf + k, rest);
  explicit_bzero(s.buf + rest, k);
  s.len = static_cast<std::uint32_t>(rest);
  s.ready -= static_cast<std::uint32_t>(k);
  s.parsed -= static_cast<std::uint32_t>(k);
  s.msg_start = s.msg_start > k ? static_cast<std::uint32_t>(s.msg_start - k) : 0;
  for (std::size_t i = 0; i < s.nsegs; ++i) {
    s.seg_from[i] -= static_cast<std::uint32_t>(k);
    s.seg_to[i] -= static_cast<std::uint32_t>(k);
  }
  return k;
}

namespace {

// inbound_read's loop, with both of st's locks held.
InboundRead read_stream(ConnState* st, unsigned char* out, std::size_t cap, bool peek, const BrokerOps& b,
                        const ReadOps& r, std::size_t* got, long* lib) {
  InboundStream& s = st->in;
  for (;;) {
    if (s.ready > 0) {
      *got = stream_take(s, out, cap, peek);
      return InboundRead::Delivered;
    }
    if (s.failed) return InboundRead::Failed;
    const long rc = r.read(r.ctx, s.buf + s.len, stream_room(s));
    if (rc <= 0) {
      const bool gone = rc == 0 || (r.ended != nullptr && r.ended(r.ctx, rc));
      if (gone && s.len > 0) {   // the end of the stream: what is held is final
        stream_end(*st, b);
        if (s.ready > 0) continue;
      }
      *lib = rc;
      return InboundRead::Library;
    }
    // The bytes are in place already: advance as stream_feed does, without the copy.
    s.len += static_cast<std::uint32_t>(rc);
    Pass x{s, *st, b};
    advance(x);
    if (stream_room(s) == 0 && s.ready == 0) go_opaque(x);
  }
}

}  // namespace

InboundRead inbound_read(ConnTable& t, const void* key, unsigned char* out, std::size_t cap, bool peek,
                         const BrokerOps& b, const ReadOps& r, std::size_t* got, long* lib) {
  if (t.count() == 0 || cap == 0) return InboundRead::PassThrough;
  ConnState* st = t.find(key);
  if (st != nullptr) st = settle_handshake(t, key, b, st);   // the read below may handshake
  if (st == nullptr) return InboundRead::PassThrough;
  ReadLock rl(st);
  StateLock lk(st);
  if (st->h2 != nullptr) return h2_read(st, out, cap, peek, b, r, got, lib);
  if (st->nfps == 0 && st->in.len == 0) return InboundRead::PassThrough;
  return read_stream(st, out, cap, peek, b, r, got, lib);
}

InboundRead inbound_after_passthrough(ConnTable& t, const void* key, unsigned char* out, std::size_t n,
                                      std::size_t cap, bool peek, const BrokerOps& b, const ReadOps& r,
                                      std::size_t* got, long* lib) {
  if (n == 0 || t.count() == 0) return InboundRead::PassThrough;
  ConnState* st = t.find(key);
  if (st == nullptr) return InboundRead::PassThrough;
  ReadLock rl(st);
  StateLock lk(st);
  if (st->h2 == nullptr && st->nfps == 0 && st->in.len == 0) return InboundRead::PassThrough;
  // A value went out while this read waited in the library: its bytes are the stream's
  // (a peek left them in the library, where the next read finds them: fail it rather
  // than hand them out unscanned).
  if (peek) {
    explicit_bzero(out, n);
    return InboundRead::Failed;
  }
  if (st->h2 != nullptr) {
    bool failed = false;
    const std::size_t k = h2_push(st, out, n, b, &failed);
    explicit_bzero(out, n);
    if (failed || k < n) return InboundRead::Failed;
    return h2_read(st, out, cap, false, b, r, got, lib);
  }
  InboundStream& s = st->in;
  if (n > stream_room(s)) {
    explicit_bzero(out, n);
    return InboundRead::Failed;
  }
  std::memcpy(s.buf + s.len, out, n);
  explicit_bzero(out, n);
  s.len += static_cast<std::uint32_t>(n);
  Pass x{s, *st, b};
  advance(x);
  if (stream_room(s) == 0 && s.ready == 0) go_opaque(x);
  return read_stream(st, out, cap, false, b, r, got, lib);
}

std::size_t inbound_pending(ConnTable& t, const void* key) {
  if (t.count() == 0) return 0;
  ConnState* st = t.find(key);
  if (st == nullptr) return 0;
  StateLock lk(st);
  if (st->h2 != nullptr) return h2_pending(st);
  return st->in.ready;
}

bool inbound_active(ConnTable& t, const void* key) {
  if (t.count() == 0) return false;
  ConnState* st = t.find(key);
  if (st == nullptr) return false;
  StateLock lk(st);
  return st->h2 != nullptr || st->nfps > 0 || st->in.len > 0;
}

std::size_t inbound_push(ConnTable& t, const void* key, const unsigned char* p, std::size_t n, const BrokerOps& b,
                         bool* failed) {
  *failed = false;
  if (t.count() == 0) return 0;
  ConnState* st = t.find(key);
  if (st == nullptr) return 0;
  StateLock lk(st);
  if (st->h2 != nullptr) return h2_push(st, p, n, b, failed);
  if (st->nfps == 0 && st->in.len == 0) return 0;
  const std::size_t k = n < stream_room(st->in) ? n : stream_room(st->in);
  stream_feed(*st, p, k, b);
  *failed = st->in.failed;
  return k;
}

std::size_t inbound_take(ConnTable& t, const void* key, unsigned char* out, std::size_t cap) {
  if (t.count() == 0) return 0;
  ConnState* st = t.find(key);
  if (st == nullptr) return 0;
  StateLock lk(st);
  if (st->h2 != nullptr) return h2_take(st, out, cap, false);
  return stream_take(st->in, out, cap, false);
}

void inbound_finish(ConnTable& t, const void* key, const BrokerOps& b) {
  if (t.count() == 0) return;
  ConnState* st = t.find(key);
  if (st == nullptr) return;
  StateLock lk(st);
  if (st->h2 != nullptr) return;   // an incomplete frame at the end is dropped
  stream_end(*st, b);
}

}  // namespace kz::preload
