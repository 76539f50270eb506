// The HTTP/2 engine (kz/preload/h2.h).
#include "kz/preload/h2.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "ascii.h"
#include "kz/preload/basic_auth.h"
#include "kz/preload/scratch.h"
#include "kz/wire/hpack.h"
#include "kz/wire/scanner.h"
#include "kz/wire/sha256.h"
#include "kz/wire/token.h"

namespace kz::preload {

namespace hp = wire::hpack;

namespace {

constexpr std::size_t kFrameHeader = 9;
// Both ends' SETTINGS_MAX_FRAME_SIZE are lowered to this, the protocol's default.
constexpr std::size_t kMaxFrame = 16384;
constexpr std::size_t kMaxBlock = 65536;             // a reassembled header block
constexpr std::size_t kMaxFields = 512;
constexpr std::size_t kArena = 65536 + 8192;         // decoded names and values of one block
constexpr std::size_t kEncodeCap = kArena + kMaxFields * 16 + 64;
// The frames of one re-encoded block: its bytes, a 9-byte header per 16 KiB, priority.
constexpr std::size_t kBlockOut = kEncodeCap + (kEncodeCap / kMaxFrame + 1) * kFrameHeader + 5;
constexpr std::size_t kRawCap = 2 * (kMaxFrame + kFrameHeader);
constexpr std::size_t kOutCap = 2 * kBlockOut;
constexpr std::size_t kMaxStreams = 128;
constexpr std::size_t kMaxRefused = 256;
constexpr std::size_t kMaxResp = 256;            // response streams with state (coded, held bytes)
constexpr std::size_t kMaxHold = wire::kMaxData;  // held DATA bytes of a stream (longest value - 1)
constexpr std::size_t kCodingName = 24;
constexpr std::uint32_t kTableClamp = hp::kMaxTableSize;

enum : std::uint8_t {
  kData = 0, kHeaders = 1, kPriority = 2, kRstStream = 3, kSettings = 4, kPushPromise = 5,
  kPing = 6, kGoaway = 7, kWindowUpdate = 8, kContinuation = 9,
};
enum : std::uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPrio = 0x20 };
constexpr std::uint32_t kCancel = 0x8;
// The opaque data of the PINGs the engine sends (their ACKs are not the client's).
constexpr unsigned char kPingMark[4] = {'k', 'z', 'h', '2'};

// A request stream's facts. Its id is in H2Conn::stream_id (0: the slot is free).
struct StreamInfo {
  bool identified = false;
  std::uint8_t host_count = 0;
  std::uint16_t mlen = 0, plen = 0, hlen = 0;
  bool path_too_long = false;
  bool has_cl = false;                  // the request's content-length, against its DATA
  std::uint64_t cl = 0, data = 0;
  char method[wire::kMaxMethod];
  char path[wire::kMaxPath];
  char host[wire::kMaxHost];
};

// A response stream's state: its coding, and the tail of its DATA held back so that a
// value split across two DATA frames is redacted whole. No member initializers: the
// engine's mapping starts zeroed (h2_conn_new) and these 1 MiB stay untouched until used.
// Its id is in H2Conn::resp_id (0: the slot is free).
struct RespInfo {
  bool coded;
  std::uint8_t clen;
  char coding[kCodingName];
  std::size_t held;
  unsigned char hold[kMaxHold];
};

// Frames owed to one side, sent at a frame boundary of its direction: RST_STREAM for
// refused streams (at most one per refused stream, so never more than kMaxRefused)
// and connection credit for DATA the engine dropped, summed into one WINDOW_UPDATE.
struct Pending {
  std::uint32_t rst[kMaxRefused];
  std::size_t nrst = 0;
  std::uint64_t credit = 0;
};

// One direction's framing.
struct Dir {
  unsigned char raw[kRawCap];     // bytes not yet parsed (at most a frame and a bit)
  std::size_t raw_len = 0;
  std::size_t preface_left = 0;   // outbound: preface bytes still to pass
  // A header block being reassembled.
  bool in_block = false;
  std::uint8_t block_type = 0, block_flags = 0;
  std::uint32_t block_stream = 0, promised = 0;
  bool block_prio = false;
  unsigned char prio[5];
  unsigned char block[kMaxBlock];
  std::size_t block_len = 0;
  hp::DynTable table;             // the sender's encoder table, mirrored
};

}  // namespace

struct H2Conn {
  Dir up;     // client -> server
  Dir down;   // server -> client
  bool broken = false;
  // The ids of the slots apart from the slots: a lookup reads 512 B or 1 KiB, not one
  // cache line (and page) of each 1.3 KiB StreamInfo or 4 KiB RespInfo.
  std::uint32_t stream_id[kMaxStreams];
  StreamInfo streams[kMaxStreams];
  std::size_t next_slot = 0;
  // The highest stream id the client opened (they only increase, RFC 9113 5.1.1): a
  // HEADERS block at or below it on a stream no longer in `streams` is trailers.
  std::uint32_t max_sid = 0;
  // Every refused stream of the connection: one more than kMaxRefused fails the
  // connection (a forgotten refused stream's later frames would be delivered).
  std::uint32_t refused[kMaxRefused];
  std::size_t nrefused = 0;
  // Frames for the client (read side) and for the server (next write), each queued at a
  // frame boundary of its direction.
  Pending to_client, to_server;
  std::uint32_t ping_seq = 0;
  H2Stats stats;
  std::uint32_t resp_id[kMaxResp];
  std::size_t nresp = 0;   // slots in use: most responses never take one
  RespInfo resp[kMaxResp];
  unsigned char dwork[kMaxHold + kMaxFrame];   // a DATA payload with the bytes held before it
  // Scratch for one block (either direction: both run under the ConnState lock).
  hp::Field fields[kMaxFields];
  unsigned char arena[kArena];
  unsigned char values[kArena];   // swapped values
  unsigned char enc[kEncodeCap];
  // Output: toward the server, flushed with write_all; toward the client, taken by reads.
  unsigned char wout[kOutCap];
  std::size_t wout_len = 0;
  unsigned char rout[kOutCap];
  std::size_t rout_start = 0, rout_len = 0;   // [rout_start, rout_start + rout_len)
};

namespace {

std::uint32_t get24(const unsigned char* p) { return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2]; }
std::uint32_t get32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
void put32(unsigned char* p, std::uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}
void put_header(unsigned char* p, std::size_t len, std::uint8_t type, std::uint8_t flags, std::uint32_t sid) {
  p[0] = static_cast<unsigned char>(len >> 16);
  p[1] = static_cast<unsigned char>(len >> 8);
  p[2] = static_cast<unsigned char>(len);
  p[3] = type;
  p[4] = flags;
  put32(p + 5, sid & 0x7fffffffu);
}

bool is_refused(const H2Conn& h, std::uint32_t sid) {
  if (sid == 0) return false;
  for (std::size_t i = 0; i < h.nrefused; ++i)
    if (h.refused[i] == sid) return true;
  return false;
}

// The slot of `sid` in ids[0, n), or n. Stream 0 is never a slot's.
std::size_t slot_of(const std::uint32_t* ids, std::size_t n, std::uint32_t sid) {
  if (sid == 0) return n;
  for (std::size_t i = 0; i < n; ++i)
    if (ids[i] == sid) return i;
  return n;
}

StreamInfo* find_stream(H2Conn& h, std::uint32_t sid) {
  const std::size_t i = slot_of(h.stream_id, kMaxStreams, sid);
  return i < kMaxStreams ? &h.streams[i] : nullptr;
}

void forget_stream(H2Conn& h, std::uint32_t sid) {
  const std::size_t i = slot_of(h.stream_id, kMaxStreams, sid);
  if (i < kMaxStreams) h.stream_id[i] = 0;
}

RespInfo* find_resp(H2Conn& h, std::uint32_t sid) {
  if (h.nresp == 0) return nullptr;
  const std::size_t i = slot_of(h.resp_id, kMaxResp, sid);
  return i < kMaxResp ? &h.resp[i] : nullptr;
}

void free_resp(H2Conn& h, const RespInfo* r) {
  h.resp_id[r - h.resp] = 0;
  --h.nresp;
}

// nullptr when full, or for stream 0 (no response is on it: RFC 9113 6.1, 6.2): the
// caller fails the connection.
RespInfo* new_resp(H2Conn& h, std::uint32_t sid) {
  if (sid == 0) return nullptr;
  if (RespInfo* r = find_resp(h, sid)) return r;
  for (std::size_t k = 0; k < kMaxResp; ++k)
    if (h.resp_id[k] == 0) {
      h.resp_id[k] = sid;
      ++h.nresp;
      RespInfo& r = h.resp[k];
      r.coded = false;
      r.clen = 0;
      r.held = 0;
      return &r;
    }
  return nullptr;
}

// Forgets a response stream; returns the held bytes dropped (the server's credit).
std::size_t drop_resp(H2Conn& h, std::uint32_t sid) {
  RespInfo* r = find_resp(h, sid);
  if (r == nullptr) return 0;
  const std::size_t n = r->held;
  explicit_bzero(r->hold, n);
  r->held = 0;
  free_resp(h, r);
  return n;
}

StreamInfo* new_stream(H2Conn& h, std::uint32_t sid) {
  std::size_t i = 0;
  while (i < kMaxStreams && h.stream_id[i] != 0) ++i;
  // Full: the oldest slot in turn (its later DATA tokens are then unidentified).
  if (i == kMaxStreams) i = h.next_slot++ % kMaxStreams;
  h.streams[i] = StreamInfo{};
  h.stream_id[i] = sid;
  return &h.streams[i];
}

// Appends a frame at q + *qlen (the caller made room).
void queue(unsigned char* q, std::size_t* qlen, std::uint8_t type, std::uint8_t flags, std::uint32_t sid,
           const unsigned char* payload, std::size_t n) {
  put_header(q + *qlen, n, type, flags, sid);
  if (n > 0) std::memcpy(q + *qlen + kFrameHeader, payload, n);
  *qlen += kFrameHeader + n;
}

void queue_rst(unsigned char* q, std::size_t* qlen, std::uint32_t sid) {
  unsigned char code[4];
  put32(code, kCancel);
  queue(q, qlen, kRstStream, 0, sid, code, 4);
}

void queue_window(unsigned char* q, std::size_t* qlen, std::size_t n) {
  if (n == 0) return;   // an increment of 0 is a protocol error
  unsigned char inc[4];
  put32(inc, static_cast<std::uint32_t>(n));
  queue(q, qlen, kWindowUpdate, 0, 0, inc, 4);
}

void pend_rst(Pending& p, std::uint32_t sid) {
  if (p.nrst < kMaxRefused) p.rst[p.nrst++] = sid;   // one per refused stream: never full
}
void pend_credit(Pending& p, std::size_t n) { p.credit += n; }
std::size_t pending_bytes(const Pending& p) {
  return p.nrst * (kFrameHeader + 4) + (p.credit + 0x7ffffffeu) / 0x7fffffffu * (kFrameHeader + 4);
}
// Writes what fits of p's frames to out[0, cap); returns the bytes written.
std::size_t emit_pending(Pending& p, unsigned char* out, std::size_t cap) {
  std::size_t o = 0, i = 0;
  for (; i < p.nrst && cap - o >= kFrameHeader + 4; ++i) queue_rst(out, &o, p.rst[i]);
  std::memmove(p.rst, p.rst + i, (p.nrst - i) * sizeof p.rst[0]);
  p.nrst -= i;
  while (p.nrst == 0 && p.credit > 0 && cap - o >= kFrameHeader + 4) {
    const std::size_t k = p.credit < 0x7fffffffu ? static_cast<std::size_t>(p.credit) : 0x7fffffffu;
    queue_window(out, &o, k);
    p.credit -= k;
  }
  return o;
}

// Lowers SETTINGS_HEADER_TABLE_SIZE and SETTINGS_MAX_FRAME_SIZE in place (h2.h).
void clamp_settings(unsigned char* payload, std::size_t n) {
  for (std::size_t i = 0; i + 6 <= n; i += 6) {
    const unsigned id = (unsigned{payload[i]} << 8) | payload[i + 1];
    const std::uint32_t v = get32(payload + i + 2);
    if (id == 0x1 && v > kTableClamp) put32(payload + i + 2, kTableClamp);
    if (id == 0x5 && v > kMaxFrame) put32(payload + i + 2, static_cast<std::uint32_t>(kMaxFrame));
  }
}

// ---- Requests ----

bool name_is(const hp::Field& f, const char* name) {
  const std::size_t l = std::strlen(name);
  return f.nl == l && std::memcmp(f.name, name, l) == 0;
}

bool ws(unsigned char c) { return c == ' ' || c == '\t'; }

// RFC 9113 8.2.1, 8.2.2, 8.3: a well-formed request (trailers: no pseudo-header).
// Names lowercase, pseudo-headers known, once each and before regular fields, values
// without NUL/CR/LF or surrounding whitespace, no connection-specific fields (te only
// "trailers"), one content-length of digits (*cl). A front end that turns h2 into
// HTTP/1.1 may read anything else as another request than the one judged.
bool well_formed(const hp::Field* fs, std::size_t n, bool trailers, bool* has_cl, std::uint64_t* cl) {
  static const char* const kPseudo[] = {":method", ":path", ":authority", ":scheme", ":protocol"};
  static const char* const kConnection[] = {"connection", "transfer-encoding", "keep-alive", "proxy-connection",
                                            "upgrade"};
  unsigned seen = 0;
  bool regular = false;
  *has_cl = false;
  for (std::size_t i = 0; i < n; ++i) {
    const hp::Field& f = fs[i];
    if (f.nl == 0) return false;
    for (std::size_t k = 0; k < f.nl; ++k)
      if (f.name[k] >= 'A' && f.name[k] <= 'Z') return false;
    for (std::size_t k = 0; k < f.vl; ++k)
      if (f.value[k] == 0 || f.value[k] == '\r' || f.value[k] == '\n') return false;
    if (f.vl > 0 && (ws(f.value[0]) || ws(f.value[f.vl - 1]))) return false;
    if (f.name[0] == ':') {
      if (trailers || regular) return false;
      unsigned which = 0;
      while (which < 5 && !name_is(f, kPseudo[which])) ++which;
      if (which == 5 || (seen & (1u << which))) return false;
      seen |= 1u << which;
      continue;
    }
    regular = true;
    for (const char* c : kConnection)
      if (name_is(f, c)) return false;
    if (name_is(f, "te") && !(f.vl == 8 && std::memcmp(f.value, "trailers", 8) == 0)) return false;
    if (name_is(f, "content-length")) {
      if (f.vl == 0 || f.vl > 18) return false;
      std::uint64_t v = 0;
      for (std::size_t k = 0; k < f.vl; ++k) {
        if (f.value[k] < '0' || f.value[k] > '9') return false;
        v = v * 10 + (f.value[k] - '0');
      }
      if (*has_cl && *cl != v) return false;
      *has_cl = true;
      *cl = v;
    }
  }
  return true;
}

// The request a HEADERS block opens: its own :method, :path and :authority (or Host).
// A malformed request (well_formed), duplicated pseudo-headers, or one after a regular
// field, leave it unidentified: its tokens go out unchanged, reported.
void identify(StreamInfo* si, const hp::Field* fs, std::size_t n) {
  if (!well_formed(fs, n, false, &si->has_cl, &si->cl)) return;
  const hp::Field *method = nullptr, *path = nullptr, *authority = nullptr;
  const hp::Field* host = nullptr;
  unsigned hosts = 0;
  bool ok = true, regular = false;
  for (std::size_t i = 0; i < n; ++i) {
    const hp::Field& f = fs[i];
    if (f.nl > 0 && f.name[0] == ':') {
      if (regular) ok = false;
      const hp::Field** slot = name_is(f, ":method") ? &method : name_is(f, ":path") ? &path
                               : name_is(f, ":authority") ? &authority : nullptr;
      if (slot != nullptr) {
        if (*slot != nullptr) ok = false;
        *slot = &f;
      }
    } else {
      regular = true;
      if (name_is(f, "host")) {
        if (host != nullptr) ++hosts;   // a second Host: invalid, whatever its value
        host = &f;
      }
    }
  }
  if (!ok || method == nullptr) return;
  si->identified = true;
  si->mlen = static_cast<std::uint16_t>(method->vl < sizeof si->method ? method->vl : sizeof si->method);
  std::memcpy(si->method, method->value, si->mlen);
  if (path != nullptr) {
    si->path_too_long = path->vl > sizeof si->path;
    si->plen = static_cast<std::uint16_t>(si->path_too_long ? 0 : path->vl);
    std::memcpy(si->path, path->value, si->plen);
  }
  const hp::Field* h = authority != nullptr ? authority : host;
  unsigned count = h != nullptr ? 1 : 0;
  if (authority != nullptr && host != nullptr &&
      (host->vl != authority->vl || std::memcmp(host->value, authority->value, host->vl) != 0))
    ++count;   // :authority and Host disagree: a server may take either
  count += hosts;
  si->host_count = static_cast<std::uint8_t>(count > 2 ? 2 : count);
  if (h != nullptr) {
    si->hlen = static_cast<std::uint16_t>(h->vl <= sizeof si->host ? h->vl : 0);
    if (h->vl > sizeof si->host) si->host_count = 2;   // not a host name the broker can take
    std::memcpy(si->host, h->value, si->hlen);
  }
}

// Points st's request fields at the stream's request; false when it has none.
bool bind_stream(ConnState* st, const StreamInfo* si) {
  st->request_flags = 0;
  if (si == nullptr || !si->identified) {
    st->method_len = st->path_len = st->http_host_len = 0;
    st->request_flags = wire::kFlagUnidentified;
    return false;
  }
  st->set_request_line(si->method, si->mlen, si->path, si->plen);
  if (si->path_too_long) st->path_len = 0;
  st->set_request_host(si->host, si->hlen, si->host_count);
  return true;
}

void report_all(const unsigned char* p, std::size_t n, const BrokerOps& b, ConnState* st, H2Stats* stats) {
  const char* c = reinterpret_cast<const char*>(p);
  for (std::size_t i = 0; i < n;) {
    const std::size_t off = wire::find_token_prefix(c + i, n - i);
    if (off == n - i) break;
    const std::size_t ext = wire::token_extent(c + i + off, n - i - off);
    if (b.report) b.report(b.ctx, st, c + i + off, ext);
    ++stats->reported;
    i += off + ext;
  }
}

// `authorization` / `proxy-authorization: Basic base64(user:password)`: the decoded
// credential's tokens are swapped as for HTTP/1.1 (outbound.cpp) and the credential is
// re-encoded into out[0, cap) (any length: the block is re-encoded anyway). Returns the
// new value's length, 0 when nothing was swapped (tokens of an unbound stream or that the
// broker refused stay, reported). *seal: a swapped value whose answer would be sealed
// (the caller refuses the stream; reported here, with its audit reason).
constexpr std::size_t kMaxBasicB64 = 1024;

// A Basic credential longer than swap_basic handles goes out as it is, but its tokens
// are reported (audited: review 27b #6), decoded a window of kMaxBasicB64 characters at
// a time. Windows overlap by half; a token is reported from the window whose first half
// it starts in (one longer than half a window is reported cut at the window's end).
void report_long_basic(const char* s, std::size_t n, const BrokerOps& b, ConnState* st, H2Stats* stats) {
  constexpr std::size_t kStep = kMaxBasicB64 / 2;   // a multiple of 4: windows start on a group
  unsigned char dec[kMaxBasicB64];
  for (std::size_t at = 0; at < n; at += kStep) {
    const std::size_t len = n - at < kMaxBasicB64 ? n - at : kMaxBasicB64;
    const long dn = b64_decode(s + at, len, dec, sizeof dec);
    if (dn <= 0) return;
    const bool last = at + len == n;
    const auto dl = static_cast<std::size_t>(dn);
    const std::size_t own = last ? dl : kStep / 4 * 3;
    const char* c = reinterpret_cast<const char*>(dec);
    for (std::size_t i = 0; i < own;) {
      const std::size_t off = wire::find_token_prefix(c + i, dl - i);
      if (off == dl - i || i + off >= own) break;
      const std::size_t ext = wire::token_extent(c + i + off, dl - i - off);
      if (b.report) b.report(b.ctx, st, c + i + off, ext);
      ++stats->reported;
      i += off + ext;
    }
    explicit_bzero(dec, dl);
    if (last) return;
  }
}

std::size_t swap_basic(const hp::Field& f, bool bound, unsigned char* out, std::size_t cap, const BrokerOps& b,
                       ConnState* st, H2Stats* stats, bool* seal) {
  const char* v = reinterpret_cast<const char*>(f.value);
  const bool auth = (f.nl == 13 && ascii_ieq(reinterpret_cast<const char*>(f.name), "authorization", 13)) ||
                    (f.nl == 19 && ascii_ieq(reinterpret_cast<const char*>(f.name), "proxy-authorization", 19));
  if (!auth || f.vl < 7 || !ascii_ieq(v, "basic", 5) || (v[5] != ' ' && v[5] != '\t')) return 0;
  std::size_t p = 6;
  while (p < f.vl && (v[p] == ' ' || v[p] == '\t')) ++p;
  std::size_t e = f.vl;
  while (e > p && (v[e - 1] == ' ' || v[e - 1] == '\t')) --e;
  if (e - p > kMaxBasicB64) {
    report_long_basic(v + p, e - p, b, st, stats);
    return 0;
  }
  unsigned char dec[kMaxBasicB64];
  char swapped[kMaxBasicB64];
  const long dn = b64_decode(v + p, e - p, dec, sizeof dec);
  if (dn <= 0) return 0;
  const auto dl = static_cast<std::size_t>(dn);
  const char* dc = reinterpret_cast<const char*>(dec);
  std::size_t n = 0, sl = 0, o = 0;
  if (wire::find_token_prefix(dc, dl) == dl) {
    // No token in the credential: it goes as it is.
  } else if (!bound) {
    report_all(dec, dl, b, st, stats);   // no request to judge it against: out unchanged
  } else if ((sl = swap_inside(dc, dl, swapped, b, st, &n)) > 0 && st->seal_secret != 0) {
    *seal = true;
    st->report_reason = wire::kReportH2StreamReset;
    report_all(dec, dl, b, st, stats);
    st->report_reason = 0;
  } else if (sl > 0 && cap >= p + (sl + 2) / 3 * 4 + (f.vl - e)) {
    std::memcpy(out, v, p);
    const long el = b64_encode(reinterpret_cast<unsigned char*>(swapped), sl, reinterpret_cast<char*>(out + p), cap - p);
    o = p + static_cast<std::size_t>(el);
    std::memcpy(out + o, v + e, f.vl - e);
    o += f.vl - e;
    stats->swapped += n;
  }
  explicit_bzero(dec, dl);
  explicit_bzero(swapped, sl);
  return o;
}

// AWS SigV4 over h2 (sigv4_resign.h does it for HTTP/1.1): a request whose header block
// carries an AWS4-HMAC-SHA256 signature (the authorization field, or a presigned :path)
// goes to the broker as the HTTP/1.1 head it stands for (request line from :method and
// :path, host from :authority, the other fields in order, values as the client sent
// them), with its body's hash: that of an empty body when the HEADERS end the stream,
// else unknown (the broker then signs only a request whose x-amz-content-sha256 names
// the hash). Allow: the real key's signature replaces the token's in a copy of the field
// it is in (at out; *used its length). Unknown: not a key kz holds, nothing changes.
// Refuse (audited by the broker) or a signature the engine cannot place: false, the
// caller refuses the stream: a request is never sent signed with the token's key when
// kz holds that key.
bool resign_h2(hp::DecodedBlock& db, bool end_stream, unsigned char* out, std::size_t cap, std::size_t* used,
               const BrokerOps& b, ConnState* st) {
  *used = 0;
  static constexpr char kAlg[] = "AWS4-HMAC-SHA256";
  bool signed_req = false;
  for (std::size_t i = 0; i < db.nfields && !signed_req; ++i) {
    const hp::Field& f = db.fields[i];
    if (name_is(f, "authorization") || name_is(f, ":path"))
      signed_req = find_bytes(reinterpret_cast<const char*>(f.value), f.vl, kAlg, sizeof kAlg - 1) != nullptr;
  }
  if (!signed_req) return true;
  char data[wire::kMaxData];
  std::size_t voff[kMaxFields];
  if (end_stream) wire::sha256_hex("", 0, data);
  else std::memset(data, '-', wire::kSignHashLen);
  std::size_t o = wire::kSignHashLen;
  bool fits = true;
  auto put = [&](const void* p, std::size_t n) {
    if (!fits || sizeof data - o < n) {
      fits = false;
      return;
    }
    std::memcpy(data + o, p, n);
    o += n;
  };
  const hp::Field* method = nullptr;
  const hp::Field* path = nullptr;
  const hp::Field* authority = nullptr;
  bool has_host = false;
  for (std::size_t i = 0; i < db.nfields; ++i) {
    const hp::Field& f = db.fields[i];
    if (name_is(f, ":method")) method = &f;
    else if (name_is(f, ":path")) path = &f;
    else if (name_is(f, ":authority")) authority = &f;
    else if (name_is(f, "host")) has_host = true;
  }
  if (method == nullptr || path == nullptr) return false;
  const std::size_t kNone = ~std::size_t{0};
  for (std::size_t i = 0; i < db.nfields; ++i) voff[i] = kNone;
  put(method->value, method->vl);
  put(" ", 1);
  voff[path - db.fields] = o - wire::kSignHashLen;
  put(path->value, path->vl);
  put(" HTTP/1.1\r\n", 11);
  if (authority != nullptr && !has_host) {
    put("host: ", 6);
    voff[authority - db.fields] = o - wire::kSignHashLen;
    put(authority->value, authority->vl);
    put("\r\n", 2);
  }
  for (std::size_t i = 0; i < db.nfields; ++i) {
    const hp::Field& f = db.fields[i];
    if (f.nl > 0 && f.name[0] == ':') continue;
    put(f.name, f.nl);
    put(": ", 2);
    voff[i] = o - wire::kSignHashLen;
    put(f.value, f.vl);
    put("\r\n", 2);
  }
  put("\r\n", 2);
  std::uint32_t form = 0;
  if (!fits) {
    o = sizeof data;
    form = wire::kSignHeadTruncated;   // the broker refuses it (audited)
  }
  char sig[wire::kSignHashLen];
  std::size_t at = 0;
  const wire::Decision d = b.sign(b.ctx, st, data, o, form, sig, &at);
  explicit_bzero(data, o);
  if (d == wire::Decision::Unknown) return true;
  bool placed = false;
  if (d == wire::Decision::Allow)
    for (std::size_t i = 0; i < db.nfields && !placed; ++i) {
      hp::Field& f = db.fields[i];
      if (voff[i] == kNone || at < voff[i] || at + wire::kSignHashLen > voff[i] + f.vl || f.vl > cap) continue;
      std::memcpy(out, f.value, f.vl);
      std::memcpy(out + (at - voff[i]), sig, wire::kSignHashLen);
      f.value = out;
      *used = f.vl;
      placed = true;
    }
  explicit_bzero(sig, sizeof sig);
  return placed;
}

// ---- Output ----

// Room for `need` more bytes in the write buffer, flushing it first when short.
bool wroom(H2Conn& h, std::size_t need, const WriteOps& w) {
  if (kOutCap - h.wout_len >= need) return true;
  if (h.wout_len > 0 && !w.write_all(w.ctx, reinterpret_cast<const char*>(h.wout), h.wout_len)) return false;
  explicit_bzero(h.wout, h.wout_len);
  h.wout_len = 0;
  return kOutCap >= need;
}

// The frames of an encoded block: HEADERS (or PUSH_PROMISE) then CONTINUATION, each at
// most kMaxFrame bytes. Returns the bytes written to out.
std::size_t frame_block(std::uint8_t type, std::uint8_t flags, std::uint32_t sid, bool prio, const unsigned char* pr,
                        bool promise, std::uint32_t promised, const unsigned char* enc, std::size_t n,
                        unsigned char* out) {
  std::size_t o = 0, pos = 0;
  const std::size_t lead = (prio ? 5 : 0) + (promise ? 4 : 0);
  const std::size_t first = n < kMaxFrame - lead ? n : kMaxFrame - lead;
  std::uint8_t f = promise ? 0 : static_cast<std::uint8_t>(flags & (kEndStream | (prio ? kPrio : 0)));
  if (first == n) f |= kEndHeaders;
  put_header(out, first + lead, type, f, sid);
  o = kFrameHeader;
  if (promise) {
    put32(out + o, promised & 0x7fffffffu);
    o += 4;
  }
  if (prio) {
    std::memcpy(out + o, pr, 5);
    o += 5;
  }
  std::memcpy(out + o, enc, first);
  o += first;
  pos = first;
  while (pos < n) {
    const std::size_t k = n - pos < kMaxFrame ? n - pos : kMaxFrame;
    put_header(out + o, k, kContinuation, pos + k == n ? kEndHeaders : 0, sid);
    o += kFrameHeader;
    std::memcpy(out + o, enc + pos, k);
    o += k;
    pos += k;
  }
  return o;
}

// Re-encodes a decoded block into h.enc; 0 when it does not fit (it always does: the
// encoding of a field is bounded by encoded_bound of its decoded lengths).
std::size_t encode(H2Conn& h, const hp::DecodedBlock& db, const bool* sensitive) {
  std::size_t o = 0;
  for (std::size_t i = 0; i < db.nsize_updates; ++i) {
    const std::size_t k = hp::encode_size_update(db.size_updates[i], h.enc + o, kEncodeCap - o);
    if (k == 0) return 0;
    o += k;
  }
  for (std::size_t i = 0; i < db.nfields; ++i) {
    const hp::Field& f = db.fields[i];
    const std::size_t k = hp::encode_field(f.name, f.nl, f.value, f.vl, f.never_index || sensitive[i], h.enc + o,
                                           kEncodeCap - o);
    if (k == 0) return 0;
    o += k;
  }
  return o;
}

bool decode(H2Conn& h, Dir& d, hp::DecodedBlock* db) {
  db->fields = h.fields;
  db->max_fields = kMaxFields;
  db->arena = h.arena;
  db->arena_cap = kArena;
  return hp::decode_block(d.table, d.block, d.block_len, db) == hp::DecodeStatus::Ok;
}

// ---- Refusal ----

// Refuses stream sid (h2.h): the client gets RST_STREAM and credit for `dropped` DATA
// bytes; the server an RST_STREAM (when it had the HEADERS, written to wout now, at a
// frame boundary) and a PING whose ACK wakes the client's read.
bool refuse_stream(H2Conn& h, std::uint32_t sid, bool server_knows, std::size_t dropped, const WriteOps* w) {
  if (!is_refused(h, sid)) {
    if (h.nrefused == kMaxRefused) return false;   // the connection fails (EPROTO)
    h.refused[h.nrefused++] = sid;
  }
  forget_stream(h, sid);
  const std::size_t held = drop_resp(h, sid);   // DATA the server sent and the client never gets
  ++h.stats.refused_streams;
  pend_rst(h.to_client, sid);
  pend_credit(h.to_client, dropped);
  unsigned char ping[8];
  std::memcpy(ping, kPingMark, 4);
  put32(ping + 4, ++h.ping_seq);
  if (w != nullptr) {
    if (!wroom(h, 3 * kFrameHeader + 16, *w)) return false;
    std::size_t l = 0;
    if (server_knows) queue_rst(h.wout + h.wout_len, &l, sid);
    queue_window(h.wout + h.wout_len, &l, held);
    h.wout_len += l;
    put_header(h.wout + h.wout_len, 8, kPing, 0, 0);
    std::memcpy(h.wout + h.wout_len + kFrameHeader, ping, 8);
    h.wout_len += kFrameHeader + 8;
  } else {
    // From the read side: the server learns at the client's next write.
    if (server_knows) pend_rst(h.to_server, sid);
    pend_credit(h.to_server, held);
  }
  return true;
}

bool is_identity(const hp::Field& f);

// A content-coded message: content-encoding or grpc-encoding other than identity.
bool coded_field(const hp::Field& f) {
  if (!name_is(f, "content-encoding") && !name_is(f, "grpc-encoding")) return false;
  return f.vl > 0 && !is_identity(f);
}

// ---- Outbound frames ----

// A complete outbound header block: decode, swap, re-encode, frame.
bool up_block(H2Conn& h, ConnState* st, const BrokerOps& b, const WriteOps& w) {
  Dir& d = h.up;
  d.in_block = false;
  hp::DecodedBlock db;
  const bool ok = decode(h, d, &db);
  explicit_bzero(d.block, d.block_len);
  if (!ok) return false;   // the tables cannot be kept in step any more
  ++h.stats.blocks_out;
  const std::uint32_t sid = d.block_stream;
  if (is_refused(h, sid)) {   // trailers of a refused stream: decoded (the table), dropped
    explicit_bzero(h.arena, db.arena_used);
    return true;
  }
  StreamInfo* si = find_stream(h, sid);
  const bool server_knows = si != nullptr;   // trailers: the server had the stream's HEADERS
  // A HEADERS block on a stream the engine forgot (its slot reused) is trailers, not a
  // new request: never judged by its own pseudo-headers; its tokens go out unchanged,
  // reported as unidentified (review 27 #6).
  if (si == nullptr && d.block_type == kHeaders && sid > h.max_sid) {
    h.max_sid = sid;
    si = new_stream(h, sid);
    identify(si, db.fields, db.nfields);
  }
  bool bound = bind_stream(st, si);
  bool tcl = false;
  std::uint64_t tv = 0;
  if (bound && server_knows && !well_formed(db.fields, db.nfields, true, &tcl, &tv)) {
    bind_stream(st, nullptr);   // malformed trailers: their tokens go out unchanged, reported
    bound = false;
  }
  bool sensitive[kMaxFields];
  std::size_t vused = 0;
  // A SigV4 request of a key kz holds: re-signed, or refused (before any token in it is
  // swapped: the client signed the values it sent).
  if (bound && !server_knows && b.sign != nullptr &&
      !resign_h2(db, (d.block_flags & kEndStream) != 0, h.values, kArena, &vused, b, st)) {
    explicit_bzero(h.values, vused);
    explicit_bzero(h.arena, db.arena_used);
    ++h.stats.resign_refused;
    return refuse_stream(h, sid, false, 0, &w);
  }
  bool any = false;
  const unsigned char* first_tok = nullptr;   // the first swapped field's value as sent by the client
  std::size_t first_len = 0;
  for (std::size_t i = 0; i < db.nfields; ++i) {
    hp::Field& f = db.fields[i];
    sensitive[i] = false;
    if (wire::find_token_prefix(reinterpret_cast<const char*>(f.name), f.nl) != f.nl)
      report_all(f.name, f.nl, b, st, &h.stats);   // a token in a field name: never swapped
    if (f.vl >= 7 && kArena - vused >= kMaxBasicB64 + 64) {
      bool seal = false;
      const std::size_t bl = swap_basic(f, bound, h.values + vused, kArena - vused, b, st, &h.stats, &seal);
      if (seal) {
        explicit_bzero(h.values, vused);
        explicit_bzero(h.arena, db.arena_used);
        return refuse_stream(h, sid, server_knows, 0, &w);
      }
      if (bl > 0) {
        f.value = h.values + vused;
        f.vl = static_cast<std::uint32_t>(bl);
        vused += bl;
        sensitive[i] = true;
        any = true;
        continue;
      }
    }
    if (wire::find_token_prefix(reinterpret_cast<const char*>(f.value), f.vl) == f.vl) continue;
    if (!bound) {   // no request to judge the token against: it goes out unchanged, reported
      report_all(f.value, f.vl, b, st, &h.stats);
      continue;
    }
    std::size_t n = 0;
    const std::size_t nl = swap_inside(reinterpret_cast<const char*>(f.value), f.vl,
                                       reinterpret_cast<char*>(h.values + vused), b, st, &n);
    h.stats.swapped += n;
    if (nl > 0) {
      if (first_tok == nullptr) {
        first_tok = f.value;
        first_len = f.vl;
      }
      f.value = h.values + vused;
      f.vl = static_cast<std::uint32_t>(nl);
      vused += nl;
      sensitive[i] = true;
      any = true;
    }
  }
  // A client secret whose token endpoint's answer would be sealed (seal_response.h):
  // HTTP/2 answers are not sealed, so the request is refused before the value goes out
  // (the answer would carry a real access token). The broker audits it.
  if (any && st->seal_secret != 0) {
    explicit_bzero(h.values, vused);
    st->report_reason = wire::kReportH2StreamReset;
    report_all(first_tok, first_len, b, st, &h.stats);
    st->report_reason = 0;
    explicit_bzero(h.arena, db.arena_used);
    return refuse_stream(h, sid, server_knows, 0, &w);
  }
  // A request that carries a value asks for an uncoded response, where inbound
  // redaction can see a value the server echoes (as accept_encoding.h does for HTTP/1.1).
  static const unsigned char kIdentity[] = "identity";
  if (any)
    for (std::size_t i = 0; i < db.nfields; ++i)
      if (name_is(db.fields[i], "accept-encoding")) {
        db.fields[i].value = kIdentity;
        db.fields[i].vl = 8;
      }
  // gRPC's own compression, on a connection that carries a value: responses are asked
  // uncoded, and a coded request (whose echo would come back coded) is refused.
  if (any || st->nfps > 0)
    for (std::size_t i = 0; i < db.nfields; ++i) {
      hp::Field& f = db.fields[i];
      if (name_is(f, "grpc-accept-encoding")) {
        f.value = kIdentity;
        f.vl = 8;
      } else if (name_is(f, "grpc-encoding") && coded_field(f)) {
        if (b.report_coded) b.report_coded(b.ctx, st, reinterpret_cast<const char*>(f.value), f.vl);
        explicit_bzero(h.values, vused);
        explicit_bzero(h.arena, db.arena_used);
        return refuse_stream(h, sid, server_knows, 0, &w);
      }
    }
  if (d.block_flags & kEndStream) forget_stream(h, sid);
  const std::size_t n = encode(h, db, sensitive);
  explicit_bzero(h.values, vused);
  explicit_bzero(h.arena, db.arena_used);
  if (n == 0) return false;
  bool r = wroom(h, kBlockOut, w);
  if (r)
    h.wout_len += frame_block(d.block_type, d.block_flags, sid, d.block_prio, d.prio, d.block_type == kPushPromise,
                              d.promised, h.enc, n, h.wout + h.wout_len);
  explicit_bzero(h.enc, n);
  return r;
}

// Starts (and, with END_HEADERS, finishes) a header block from a HEADERS or
// PUSH_PROMISE frame's payload.
bool start_block(Dir& d, std::uint8_t type, std::uint8_t flags, std::uint32_t sid, const unsigned char* p,
                 std::size_t n) {
  std::size_t off = 0, pad = 0;
  if (flags & kPadded) {
    if (n < 1) return false;
    pad = p[0];
    off = 1;
  }
  d.block_prio = false;
  d.promised = 0;
  if (type == kPushPromise) {
    if (n < off + 4) return false;
    d.promised = get32(p + off) & 0x7fffffffu;
    off += 4;
  } else if (flags & kPrio) {
    if (n < off + 5) return false;
    std::memcpy(d.prio, p + off, 5);
    d.block_prio = true;
    off += 5;
  }
  if (off + pad > n || n - off - pad > kMaxBlock) return false;
  d.in_block = true;
  d.block_type = type;
  d.block_flags = flags;
  d.block_stream = sid;
  d.block_len = n - off - pad;
  std::memcpy(d.block, p + off, d.block_len);
  return true;
}

// A frame while a block is open: only its CONTINUATION may come. -1: framing lost; 1:
// the block is complete (END_HEADERS); 0: more to come.
int continue_block(Dir& d, std::uint8_t type, std::uint8_t flags, std::uint32_t sid, const unsigned char* p,
                   std::size_t n) {
  if (type != kContinuation || sid != d.block_stream || d.block_len + n > kMaxBlock) return -1;
  std::memcpy(d.block + d.block_len, p, n);
  d.block_len += n;
  return (flags & kEndHeaders) ? 1 : 0;
}

// A DATA frame's payload without its padding, [*off, *off + *n); false when the padding
// is longer than the frame.
bool unpad(const unsigned char* p, std::size_t len, std::uint8_t flags, std::size_t* off, std::size_t* n) {
  *off = 0;
  *n = len;
  if (!(flags & kPadded)) return true;
  if (len < 1 || 1u + p[0] > len) return false;
  *off = 1;
  *n = len - 1 - p[0];
  return true;
}

// The DATA payload p[0, n) of stream sid (padding excluded): tokens swapped in place
// when the value has the token's length. false: one could not be (refuse the stream).
bool up_data(H2Conn& h, ConnState* st, std::uint32_t sid, unsigned char* p, std::size_t n, const BrokerOps& b,
             bool* refuse_tok, const char** tok, std::size_t* tok_len) {
  char* c = reinterpret_cast<char*>(p);
  std::size_t i = 0;
  bool bound_done = false, bound = false;
  while (i < n) {
    const std::size_t off = wire::find_token_prefix(c + i, n - i);
    if (off == n - i) break;
    const std::size_t t = i + off;
    const std::size_t ext = wire::token_extent(c + t, n - t);
    i = t + ext;
    if (ext == wire::marker_at(c + t, n - t) && t + ext < n) continue;
    if (!bound_done) {
      bound = bind_stream(st, find_stream(h, sid));
      bound_done = true;
    }
    if (!bound) {
      if (b.report) b.report(b.ctx, st, c + t, ext);
      ++h.stats.reported;
      continue;
    }
    char value[wire::kMaxTokenLen];
    std::size_t got = 0, tl = 0;
    const bool at_end = t + ext == n;
    const wire::Decision dd = b.swap(b.ctx, st, c + t, ext, at_end, value, ext, &got, &tl);
    if (dd == wire::Decision::Allow && got == ext && st->seal_secret == 0) {
      std::memcpy(c + t, value, ext);
      ++h.stats.swapped;
    } else if (dd == wire::Decision::Allow) {
      // A value of another length: DATA cannot change length (flow control, the
      // stream's content-length), so the stream is refused. Nothing of it is sent.
      // So is a client secret whose token answer would have to be sealed: HTTP/2
      // answers are not sealed (seal_response.h), they are refused.
      *refuse_tok = true;
      *tok = c + t;
      *tok_len = ext;
      explicit_bzero(value, sizeof value);
      return false;
    } else if (dd == wire::Decision::Incomplete) {
      // The token goes on in the next frame: it goes out unchanged, reported.
      if (b.report) b.report(b.ctx, st, c + t, ext);
      ++h.stats.reported;
    }
    explicit_bzero(value, got);
  }
  return true;
}

// One complete outbound frame at f (header + payload, len = payload length).
bool up_frame(H2Conn& h, ConnState* st, unsigned char* f, std::size_t len, const BrokerOps& b, const WriteOps& w) {
  Dir& d = h.up;
  const std::uint8_t type = f[3], flags = f[4];
  const std::uint32_t sid = get32(f + 5) & 0x7fffffffu;
  unsigned char* p = f + kFrameHeader;
  if (d.in_block) {
    const int c = continue_block(d, type, flags, sid, p, len);
    return c < 0 ? false : c == 0 || up_block(h, st, b, w);
  }
  switch (type) {
    case kHeaders:
      if (!start_block(d, type, flags, sid, p, len)) return false;
      if (flags & kEndHeaders) return up_block(h, st, b, w);
      return true;
    case kContinuation:
    case kPushPromise:   // a client never sends one
      return false;
    case kData: {
      if (is_refused(h, sid)) {
        pend_credit(h.to_client, len);
        return true;
      }
      std::size_t off = 0, n = 0;
      if (!unpad(p, len, flags, &off, &n)) return false;
      StreamInfo* si = find_stream(h, sid);
      if (si != nullptr && si->identified && si->has_cl) {
        // DATA past the request's content-length, or END_STREAM short of it: malformed
        // (RFC 9113 8.1.1); the frame is not sent, the stream is refused.
        si->data += n;
        if (si->data > si->cl || ((flags & kEndStream) && si->data < si->cl)) {
          st->report_reason = wire::kReportH2StreamReset;
          report_all(p + off, n, b, st, &h.stats);
          st->report_reason = 0;
          explicit_bzero(p, len);
          return refuse_stream(h, sid, true, len, &w);
        }
      }
      bool refuse = false;
      const char* tok = nullptr;
      std::size_t tok_len = 0;
      if (!up_data(h, st, sid, p + off, n, b, &refuse, &tok, &tok_len)) {
        // The broker audits the refusal (Report, kReportH2StreamReset).
        st->report_reason = wire::kReportH2StreamReset;
        if (b.report) b.report(b.ctx, st, tok, tok_len);
        st->report_reason = 0;
        explicit_bzero(p, len);
        return refuse_stream(h, sid, true, len, &w);
      }
      if (flags & kEndStream) forget_stream(h, sid);
      break;
    }
    case kSettings:
      if (!(flags & kAck)) clamp_settings(p, len);
      break;
    case kRstStream: {
      if (is_refused(h, sid)) return true;
      forget_stream(h, sid);
      const std::size_t held = drop_resp(h, sid);   // the server's credit for DATA never delivered
      if (held > 0) {
        if (!wroom(h, kFrameHeader + 4, w)) return false;
        std::size_t l = 0;
        queue_window(h.wout + h.wout_len, &l, held);
        h.wout_len += l;
      }
      break;
    }
    case kWindowUpdate:
    case kPriority:
      if (is_refused(h, sid)) return true;
      break;
    default:
      break;
  }
  if (!wroom(h, kFrameHeader + len, w)) return false;
  std::memcpy(h.wout + h.wout_len, f, kFrameHeader + len);
  h.wout_len += kFrameHeader + len;
  return true;
}

// Parses what d.raw holds: the preface, then complete frames. false: framing lost (or
// a write failed: *write_failed).
bool up_parse(H2Conn& h, ConnState* st, const BrokerOps& b, const WriteOps& w, bool* write_failed) {
  Dir& d = h.up;
  std::size_t pos = 0;
  bool ok = true;
  if (d.preface_left > 0) {
    const std::size_t k = d.raw_len < d.preface_left ? d.raw_len : d.preface_left;
    const std::size_t at = kH2PrefaceLen - d.preface_left;
    if (std::memcmp(d.raw, kH2Preface + at, k) != 0) return false;
    if (!wroom(h, k, w)) {
      *write_failed = true;
      return false;
    }
    std::memcpy(h.wout + h.wout_len, d.raw, k);
    h.wout_len += k;
    d.preface_left -= k;
    pos = k;
  }
  while (ok && d.raw_len - pos >= kFrameHeader) {
    const std::size_t len = get24(d.raw + pos);
    if (len > kMaxFrame) {
      ok = false;
      break;
    }
    if (d.raw_len - pos < kFrameHeader + len) break;
    if (!up_frame(h, st, d.raw + pos, len, b, w)) ok = false;
    explicit_bzero(d.raw + pos, kFrameHeader + len);
    pos += kFrameHeader + len;
  }
  std::memmove(d.raw, d.raw + pos, d.raw_len - pos);
  d.raw_len -= pos;
  return ok;
}

// ---- Inbound frames ----

bool rroom(const H2Conn& h, std::size_t need) { return kOutCap - (h.rout_start + h.rout_len) >= need; }

void rcompact(H2Conn& h) {
  if (h.rout_start == 0) return;
  std::memmove(h.rout, h.rout + h.rout_start, h.rout_len);
  h.rout_start = 0;
}

void rput(H2Conn& h, const unsigned char* p, std::size_t n) {
  std::memcpy(h.rout + h.rout_start + h.rout_len, p, n);
  h.rout_len += n;
}

void move_injections(H2Conn& h) {
  if (h.to_client.nrst == 0 && h.to_client.credit == 0) return;
  rcompact(h);
  h.rout_len += emit_pending(h.to_client, h.rout + h.rout_len, kOutCap - h.rout_len);
}

bool contains_ci(const unsigned char* p, std::size_t n, const char* word) {
  const std::size_t wl = std::strlen(word);
  for (std::size_t i = 0; i + wl <= n; ++i) {
    std::size_t j = 0;
    while (j < wl && (p[i + j] | 0x20) == word[j]) ++j;
    if (j == wl) return true;
  }
  return false;
}

bool is_identity(const hp::Field& f) { return f.vl == 8 && contains_ci(f.value, f.vl, "identity"); }

// The DATA bytes held back for stream sid, as a DATA frame of their own.
void flush_held(H2Conn& h, std::uint32_t sid) {
  RespInfo* r = find_resp(h, sid);
  if (r == nullptr || r->held == 0) return;
  put_header(h.rout + h.rout_start + h.rout_len, r->held, kData, 0, sid);
  h.rout_len += kFrameHeader;
  rput(h, r->hold, r->held);
  explicit_bzero(r->hold, r->held);
  r->held = 0;
  if (!r->coded) free_resp(h, r);
}

// A response DATA frame f (payload [off, off + n) of len, padding after it) of a stream
// that may hold bytes: redacts the held bytes and the payload as one piece, sends all
// but the last (longest value - 1) bytes, holds those for the stream's next DATA (all go
// at END_STREAM). The DATA bytes in total are unchanged, so flow control stays exact.
// false: no room to hold (the connection fails).
bool down_data(H2Conn& h, ConnState* st, unsigned char* f, std::size_t len, std::size_t off, std::size_t n,
               const BrokerOps& b) {
  const std::uint8_t flags = f[4];
  const std::uint32_t sid = get32(f + 5) & 0x7fffffffu;
  unsigned char* p = f + kFrameHeader;
  RespInfo* r = find_resp(h, sid);
  const std::size_t held = r != nullptr ? r->held : 0;
  if (held > 0) std::memcpy(h.dwork, r->hold, held);
  std::memcpy(h.dwork + held, p + off, n);
  const std::size_t total = held + n;
  h.stats.redacted += redact_buffer(h.dwork, total, st->fps, st->nfps, b, st);
  if (flags & kEndStream) {
    // Everything goes: the held bytes in a frame of their own, then this frame.
    if (r != nullptr) {
      std::memcpy(r->hold, h.dwork, held);
      flush_held(h, sid);
    }
    std::memcpy(p + off, h.dwork + held, n);
    explicit_bzero(h.dwork, total);
    drop_resp(h, sid);
    rput(h, f, kFrameHeader + len);
    return true;
  }
  const std::size_t lp = longest_print(*st);
  std::size_t keep = lp > 0 ? lp - 1 : 0;
  if (keep > kMaxHold) keep = kMaxHold;
  const std::size_t emit = total > keep ? total - keep : 0;
  const std::size_t now_held = total - emit;
  if (now_held > 0 && r == nullptr && (r = new_resp(h, sid)) == nullptr) {
    explicit_bzero(h.dwork, total);
    return false;
  }
  const std::size_t pad = len - off - n;   // padding (and its length byte) stay in the frame
  if (emit > 0 || pad > 0 || off > 0) {
    const std::size_t flen = off + emit + pad;
    unsigned char* o = h.rout + h.rout_start + h.rout_len;
    put_header(o, flen, kData, flags, sid);
    if (off > 0) o[kFrameHeader] = p[0];
    std::memcpy(o + kFrameHeader + off, h.dwork, emit);
    std::memset(o + kFrameHeader + off + emit, 0, pad);
    h.rout_len += kFrameHeader + flen;
  }
  if (r != nullptr) {
    std::memcpy(r->hold, h.dwork + emit, now_held);
    r->held = now_held;
    if (now_held == 0 && !r->coded) free_resp(h, r);
  }
  explicit_bzero(h.dwork, total);
  explicit_bzero(p, len);
  return true;
}

bool down_block(H2Conn& h, ConnState* st, const BrokerOps& b) {
  Dir& d = h.down;
  d.in_block = false;
  hp::DecodedBlock db;
  const bool ok = decode(h, d, &db);
  explicit_bzero(d.block, d.block_len);
  if (!ok) return false;
  ++h.stats.blocks_in;
  const std::uint32_t sid = d.block_stream;
  if (is_refused(h, sid)) return true;
  bool sensitive[kMaxFields];
  for (std::size_t i = 0; i < db.nfields; ++i) {
    sensitive[i] = false;
    hp::Field& f = db.fields[i];
    // A content-coded response (content-encoding or grpc-encoding): redaction cannot see
    // into it (inbound.h). On a connection that carries a value the stream is refused
    // (the broker audits it); otherwise the stream is marked, and refused at its first
    // DATA after a value is swapped on the connection.
    if (d.block_type == kHeaders && coded_field(f)) {
      if (st->nfps > 0) {
        if (b.report_coded) b.report_coded(b.ctx, st, reinterpret_cast<const char*>(f.value), f.vl);
        explicit_bzero(h.arena, db.arena_used);
        return refuse_stream(h, sid, true, 0, nullptr);
      }
      RespInfo* r = new_resp(h, sid);
      if (r == nullptr) return false;   // more coded streams than the engine follows: the connection fails
      r->coded = true;
      r->clen = static_cast<std::uint8_t>(f.vl < kCodingName ? f.vl : kCodingName);
      std::memcpy(r->coding, f.value, r->clen);
    }
    if (st->nfps == 0) continue;
    const std::size_t r = redact_buffer(const_cast<unsigned char*>(f.value), f.vl, st->fps, st->nfps, b, st);
    h.stats.redacted += r;
  }
  const std::size_t n = encode(h, db, sensitive);
  explicit_bzero(h.arena, db.arena_used);
  if (n == 0) return false;
  if (d.block_type == kHeaders) {
    // Trailers: the DATA bytes held back go first; the stream ends here.
    flush_held(h, sid);
    if (d.block_flags & kEndStream) drop_resp(h, sid);
  }
  h.rout_len += frame_block(d.block_type, d.block_flags, sid, d.block_prio, d.prio, d.block_type == kPushPromise,
                            d.promised, h.enc, n, h.rout + h.rout_start + h.rout_len);
  explicit_bzero(h.enc, n);
  return true;
}

// One complete inbound frame: false when the framing is lost.
bool down_frame(H2Conn& h, ConnState* st, unsigned char* f, std::size_t len, const BrokerOps& b) {
  Dir& d = h.down;
  const std::uint8_t type = f[3], flags = f[4];
  const std::uint32_t sid = get32(f + 5) & 0x7fffffffu;
  unsigned char* p = f + kFrameHeader;
  if (d.in_block) {
    const int c = continue_block(d, type, flags, sid, p, len);
    return c < 0 ? false : c == 0 || down_block(h, st, b);
  }
  switch (type) {
    case kHeaders:
    case kPushPromise:
      if (!start_block(d, type, flags, sid, p, len)) return false;
      return (flags & kEndHeaders) ? down_block(h, st, b) : true;
    case kContinuation:
      return false;
    case kData: {
      if (is_refused(h, sid)) {
        pend_credit(h.to_server, len);
        return true;
      }
      std::size_t off = 0, n = 0;
      if (!unpad(p, len, flags, &off, &n)) return false;
      RespInfo* r = find_resp(h, sid);
      if (r != nullptr && r->coded && st->nfps > 0) {
        // A coded response whose stream a value was swapped on since its HEADERS.
        if (b.report_coded) b.report_coded(b.ctx, st, r->coding, r->clen);
        pend_credit(h.to_server, len);
        return refuse_stream(h, sid, true, 0, nullptr);
      }
      if (st->nfps > 0 || (r != nullptr && r->held > 0)) return down_data(h, st, f, len, off, n, b);
      if ((flags & kEndStream) && r != nullptr) drop_resp(h, sid);
      break;
    }
    case kGoaway:   // its debug data may echo what the client sent
      if (st->nfps > 0 && len > 8) h.stats.redacted += redact_buffer(p + 8, len - 8, st->fps, st->nfps, b, st);
      break;
    case kSettings:
      if (!(flags & kAck)) clamp_settings(p, len);
      break;
    case kPing:
      if ((flags & kAck) && len == 8 && std::memcmp(p, kPingMark, 4) == 0) return true;   // ours
      break;
    case kRstStream:
      if (is_refused(h, sid)) return true;
      pend_credit(h.to_server, drop_resp(h, sid));
      break;
    case kWindowUpdate:
    case kPriority:
      if (is_refused(h, sid)) return true;
      break;
    default:
      // Extension frames (ALTSVC, ORIGIN, ...): their payloads are redacted like DATA.
      if (type > kContinuation && st->nfps > 0) h.stats.redacted += redact_buffer(p, len, st->fps, st->nfps, b, st);
      break;
  }
  rput(h, f, kFrameHeader + len);
  return true;
}

// Parses complete frames of d.raw while rout has room for the worst case of each.
bool down_parse(H2Conn& h, ConnState* st, const BrokerOps& b) {
  Dir& d = h.down;
  std::size_t pos = 0;
  bool ok = true;
  move_injections(h);
  while (d.raw_len - pos >= kFrameHeader) {
    const std::size_t len = get24(d.raw + pos);
    if (len > kMaxFrame) {
      ok = false;
      break;
    }
    if (d.raw_len - pos < kFrameHeader + len) break;
    rcompact(h);
    // The worst case: a re-encoded block or the frame, after a stream's held DATA.
    if (!rroom(h, kBlockOut + 2 * kFrameHeader + kMaxHold + len)) break;   // the client reads first
    if (!down_frame(h, st, d.raw + pos, len, b)) {
      ok = false;
      break;
    }
    pos += kFrameHeader + len;
    move_injections(h);
  }
  explicit_bzero(d.raw, pos);
  std::memmove(d.raw, d.raw + pos, d.raw_len - pos);
  d.raw_len -= pos;
  if (!ok) h.broken = true;
  h.stats.broken = h.broken;
  return ok;
}

std::size_t take(H2Conn& h, unsigned char* out, std::size_t cap, bool peek) {
  const std::size_t k = h.rout_len < cap ? h.rout_len : cap;
  std::memcpy(out, h.rout + h.rout_start, k);
  if (!peek) {
    explicit_bzero(h.rout + h.rout_start, k);
    h.rout_start += k;
    h.rout_len -= k;
    if (h.rout_len == 0) h.rout_start = 0;
  }
  return k;
}

}  // namespace

bool h2_is_preface(const char* p, std::size_t n) {
  return n >= kH2PrefaceLen && std::memcmp(p, kH2Preface, kH2PrefaceLen) == 0;
}

H2Conn* h2_conn_new() {
  void* m = scratch_alloc(sizeof(H2Conn));
  if (m == nullptr) return nullptr;
  H2Conn* h = new (m) H2Conn;   // default-init: the mapping is zero already, pages touched as used
  h->up.preface_left = kH2PrefaceLen;
  return h;
}

void h2_conn_free(H2Conn* h) {
  if (h == nullptr) return;
  h->~H2Conn();
  scratch_free(h, sizeof(H2Conn));
}

WriteOutcome h2_write(ConnState* st, const char* buf, std::size_t len, const BrokerOps& b, const WriteOps& w) {
  H2Conn& h = *st->h2;
  if (h.broken) {
    errno = EPROTO;
    return WriteOutcome::Failed;
  }
  // Frames the read side queued for the server go first (the output is at a frame boundary).
  h.wout_len += emit_pending(h.to_server, h.wout + h.wout_len, kOutCap - h.wout_len);
  std::size_t pos = 0;
  bool write_failed = false;
  while (pos < len) {
    Dir& d = h.up;
    const std::size_t k = len - pos < kRawCap - d.raw_len ? len - pos : kRawCap - d.raw_len;
    std::memcpy(d.raw + d.raw_len, buf + pos, k);
    d.raw_len += k;
    pos += k;
    if (!up_parse(h, st, b, w, &write_failed)) {
      h.broken = true;
      break;
    }
  }
  h.stats.broken = h.broken;
  if (!h.broken && h.wout_len > 0) {
    write_failed = !w.write_all(w.ctx, reinterpret_cast<const char*>(h.wout), h.wout_len);
    explicit_bzero(h.wout, h.wout_len);
    h.wout_len = 0;
  }
  if (h.broken) {
    explicit_bzero(h.wout, h.wout_len);
    h.wout_len = 0;
    if (!write_failed) errno = EPROTO;
    return WriteOutcome::Failed;
  }
  return write_failed ? WriteOutcome::Failed : WriteOutcome::Consumed;
}

InboundRead h2_read(ConnState* st, unsigned char* out, std::size_t cap, bool peek, const BrokerOps& b,
                    const ReadOps& r, std::size_t* got, long* lib) {
  H2Conn& h = *st->h2;
  for (;;) {
    move_injections(h);
    Dir& d = h.down;
    // Complete frames left from the last read (rout was full) come before a new read.
    if (h.rout_len == 0 && d.raw_len >= kFrameHeader && !h.broken) down_parse(h, st, b);
    if (h.rout_len > 0) {
      *got = take(h, out, cap, peek);
      // Keep what is ready visible to SSL_pending: parse what the take made room for.
      if (!peek && h.rout_len == 0 && d.raw_len >= kFrameHeader && !h.broken) down_parse(h, st, b);
      return InboundRead::Delivered;
    }
    if (h.broken) return InboundRead::Failed;
    // The library read, which may wait for the server, runs without the connection's
    // lock: a program's other thread writes meanwhile (the server may be waiting for
    // that very write). d.raw is the readers' own (the caller holds st->read_mu).
    unsigned char* into = d.raw + d.raw_len;
    const std::size_t room = kRawCap - d.raw_len;
    pthread_mutex_unlock(&st->mu);
    const long rc = r.read(r.ctx, into, room);
    pthread_mutex_lock(&st->mu);
    if (rc <= 0) {
      *lib = rc;
      return InboundRead::Library;
    }
    d.raw_len += static_cast<std::size_t>(rc);
    if (!down_parse(h, st, b) && h.rout_len == 0) return InboundRead::Failed;
  }
}

std::size_t h2_push(ConnState* st, const unsigned char* p, std::size_t n, const BrokerOps& b, bool* failed) {
  H2Conn& h = *st->h2;
  if (h.broken) {
    *failed = true;
    return 0;
  }
  Dir& d = h.down;
  const std::size_t k = n < kRawCap - d.raw_len ? n : kRawCap - d.raw_len;
  std::memcpy(d.raw + d.raw_len, p, k);
  d.raw_len += k;
  if (!down_parse(h, st, b)) *failed = true;
  return k;
}

std::size_t h2_take(ConnState* st, unsigned char* out, std::size_t cap, bool peek) {
  H2Conn& h = *st->h2;
  move_injections(h);
  const std::size_t k = take(h, out, cap, peek);
  return k;
}

std::size_t h2_pending(const ConnState* st) {
  const H2Conn& h = *st->h2;
  return h.rout_len + pending_bytes(h.to_client);
}

bool h2_flush(ConnState* st, const WriteOps& w) {
  H2Conn& h = *st->h2;
  if (h.broken || h.up.preface_left > 0 || (h.to_server.nrst == 0 && h.to_server.credit == 0)) return true;
  // Between writes the server's side is at a frame boundary outside any header block
  // (blocks go out whole); wout is empty.
  unsigned char buf[32 * (kFrameHeader + 4)];
  bool ok = true;
  while (ok && (h.to_server.nrst > 0 || h.to_server.credit > 0)) {
    const std::size_t n = emit_pending(h.to_server, buf, sizeof buf);
    ok = w.write_all(w.ctx, reinterpret_cast<const char*>(buf), n);
  }
  return ok;
}

H2Stats h2_stats(const ConnState* st) { return st->h2 != nullptr ? st->h2->stats : H2Stats{}; }

}  // namespace kz::preload
