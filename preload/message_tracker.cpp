#include "kz/preload/message_tracker.h"
#include "kz/preload/find_bytes.h"

#include <string.h>

#include <cstring>

#include "ascii.h"

namespace kz::preload {

namespace {

// Sub-states of a chunked body (MessageTracker::chunk).
enum Chunk : std::uint8_t {
  kSize,          // chunk-size hex digits
  kExt,           // after the digits: chunk extensions up to CR
  kSizeLF,        // CR seen after the size line
  kData,          // `remaining` data bytes
  kDataCR,        // CRLF after the data
  kDataLF,
  kTrailerStart,  // at the start of a trailer line (or the final empty line)
  kTrailerLine,
  kTrailerLF,     // CR seen inside a trailer line
  kEndLF,         // CR of the final empty line seen
};

constexpr std::uint8_t kMaxSizeDigits = 15;

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

// Request methods as clients send them: upper-case letters, "-" and "_" (a lower-case
// "method" is not taken for a request line: a server may disagree on it, so it loses
// the stream; and text that merely starts like a word is not held as a head).
bool is_method_char(unsigned char c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

// A request target starts with "/" (origin form), "*", or a letter (absolute form).
bool is_target_start(unsigned char c) { return c == '/' || c == '*' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

void trim(const char* p, std::size_t* b, std::size_t* e) {
  while (*b < *e && (p[*b] == ' ' || p[*b] == '\t')) ++*b;
  while (*e > *b && (p[*e - 1] == ' ' || p[*e - 1] == '\t')) --*e;
}

// What a strictly parsed head says about its request and its body.
struct Head {
  Span method, target, host;
  unsigned host_count = 0;
  bool has_length = false, chunked = false, expect_continue = false, switches = false;
  std::uint64_t length = 0;
};

// Parses the head [hs, he) (he just past its CRLFCRLF) of p. false: a head servers may
// read differently (or not HTTP/1.x at all).
bool parse_strict_head(const char* p, std::size_t hs, std::size_t he, Head* h) {
  // No CR without LF, no LF without CR, and no other control byte (NUL, DEL, ...) but tab
  // anywhere in the head. One pass: the request line and the names allow none of them
  // either, so a field value needs no check of its own.
  for (std::size_t i = hs; i < he; ++i) {
    const auto u = static_cast<unsigned char>(p[i]);
    if (u >= 0x20 && u != 0x7f) continue;
    if (u == '\r') {
      if (i + 1 >= he || p[i + 1] != '\n') return false;
    } else if (u == '\n') {
      if (i == hs || p[i - 1] != '\r') return false;
    } else if (u != '\t') {
      return false;
    }
  }
  // Request line: method SP target SP HTTP/1.x CRLF.
  std::size_t i = hs;
  while (i < he && is_method_char(static_cast<unsigned char>(p[i]))) ++i;
  if (i == hs || i - hs > wire::kMaxMethod || p[i] != ' ') return false;
  h->method = Span{hs, i - hs};
  const std::size_t ts = ++i;
  if (!is_target_start(static_cast<unsigned char>(p[ts]))) return false;
  while (i < he && static_cast<unsigned char>(p[i]) > 0x20 && static_cast<unsigned char>(p[i]) < 0x7f) ++i;
  if (i == ts || p[i] != ' ') return false;
  h->target = Span{ts, i - ts};
  ++i;
  if (he - i < 10 || std::memcmp(p + i, "HTTP/1.", 7) != 0 || (p[i + 7] != '1' && p[i + 7] != '0') ||
      p[i + 8] != '\r')
    return false;
  i += 10;
  int lengths = 0, codings = 0;
  while (i + 2 <= he) {
    if (p[i] == '\r') break;   // the empty line
    const char* eol = static_cast<const char*>(std::memchr(p + i, '\r', he - i));
    const std::size_t le = static_cast<std::size_t>(eol - p);
    // name ":" value; a name is tokens only (no space before the colon, no obs-fold).
    std::size_t c = i;
    while (c < le && is_tchar(static_cast<unsigned char>(p[c]))) ++c;
    if (c == i || c == le || p[c] != ':') return false;
    const std::size_t nl = c - i;
    std::size_t vb = c + 1, ve = le;
    trim(p, &vb, &ve);
    if (nl == 4 && ascii_ieq(p + i, "host", 4)) {
      ++h->host_count;
      h->host = Span{vb, ve - vb};
    } else if (nl == 14 && ascii_ieq(p + i, "content-length", 14)) {
      ++lengths;
      if (ve == vb || ve - vb > 15) return false;
      std::uint64_t v = 0;
      for (std::size_t k = vb; k < ve; ++k) {
        if (p[k] < '0' || p[k] > '9') return false;
        v = v * 10 + static_cast<unsigned>(p[k] - '0');
      }
      h->length = v;
    } else if (nl == 17 && ascii_ieq(p + i, "transfer-encoding", 17)) {
      ++codings;
      if (ve - vb != 7 || !ascii_ieq(p + vb, "chunked", 7)) return false;   // only "chunked" is followed
    } else if (nl == 6 && ascii_ieq(p + i, "expect", 6)) {
      h->expect_continue = true;
    } else if (nl == 7 && ascii_ieq(p + i, "upgrade", 7)) {
      h->switches = true;
    }
    i = le + 2;
  }
  if (lengths > 1 || codings > 1 || (lengths == 1 && codings == 1)) return false;
  h->has_length = lengths == 1;
  h->chunked = codings == 1;
  if (h->method.len == 7 && std::memcmp(p + h->method.pos, "CONNECT", 7) == 0) h->switches = true;
  return true;
}

// Could [i, n), a head without its end yet, still become a valid one? Rules out at once
// what is not a request line (the stream is then Lost, never held waiting for an end).
bool could_be_head(const char* p, std::size_t i, std::size_t n) {
  std::size_t j = i;
  while (j < n && is_method_char(static_cast<unsigned char>(p[j]))) ++j;
  if (j - i > wire::kMaxMethod) return false;
  if (j == n) return true;
  if (j == i || p[j] != ' ') return false;
  if (j + 1 < n && !is_target_start(static_cast<unsigned char>(p[j + 1]))) return false;
  const char* lf = static_cast<const char*>(std::memchr(p + j, '\n', n - j));
  if (lf == nullptr) return true;
  const std::size_t le = static_cast<std::size_t>(lf - p);   // the request line is complete
  if (le < j + 12 || p[le - 1] != '\r') return false;
  const std::size_t ver = le - 9;
  if (std::memcmp(p + ver, "HTTP/1.", 7) != 0 || (p[ver + 7] != '1' && p[ver + 7] != '0') || p[ver - 1] != ' ')
    return false;
  for (std::size_t k = j + 1; k < ver - 1; ++k)
    if (static_cast<unsigned char>(p[k]) <= 0x20 || static_cast<unsigned char>(p[k]) >= 0x7f) return false;
  return ver - 1 > j + 1;
}

void copy_request(const char* p, const Head& h, TrackedRequest* r) {
  r->method_len = static_cast<std::uint16_t>(h.method.len);
  std::memcpy(r->method, p + h.method.pos, h.method.len);
  r->target_len = h.target.len <= sizeof r->target ? static_cast<std::uint16_t>(h.target.len) : 0;
  std::memcpy(r->target, p + h.target.pos, r->target_len);
  r->host_count = static_cast<std::uint8_t>(h.host_count < 3 ? h.host_count : 3);
  r->host_len = h.host.len <= sizeof r->host ? static_cast<std::uint16_t>(h.host.len) : 0;
  // A Host, or an absolute-form target (its authority), too long to keep cannot be
  // checked: counted as invalid, which the broker refuses.
  if (h.host.len > sizeof r->host || (r->target_len == 0 && p[h.target.pos] != '/')) r->host_count = 3;
  std::memcpy(r->host, p + h.host.pos, r->host_len);
  r->body_identified = !h.expect_continue;
}

// Follows a chunked body from p[i]; returns where the message ended (n when it did not).
// Sets to->phase to Head at the end of the message, Lost on malformed framing.
std::size_t follow_chunked(MessageTracker* to, const char* p, std::size_t i, std::size_t n) {
  while (i < n) {
    const char c = p[i];
    switch (to->chunk) {
      case kSize: {
        const int d = hex_digit(c);
        if (d >= 0) {
          if (++to->digits > kMaxSizeDigits) { to->phase = MessageTracker::Phase::Lost; return n; }
          to->remaining = to->remaining * 16 + static_cast<unsigned>(d);
        } else if (to->digits > 0 && (c == ';' || c == ' ' || c == '\t')) {
          to->chunk = kExt;
        } else if (to->digits > 0 && c == '\r') {
          to->chunk = kSizeLF;
        } else {
          to->phase = MessageTracker::Phase::Lost;
          return n;
        }
        ++i;
        break;
      }
      case kExt:
        if (c == '\r') to->chunk = kSizeLF;
        else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t')) { to->phase = MessageTracker::Phase::Lost; return n; }
        ++i;
        break;
      case kSizeLF:
        if (c != '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        to->chunk = to->remaining == 0 ? kTrailerStart : kData;
        to->digits = 0;
        ++i;
        break;
      case kData: {
        const std::size_t take = n - i < to->remaining ? n - i : static_cast<std::size_t>(to->remaining);
        i += take;
        to->remaining -= take;
        if (to->remaining == 0) to->chunk = kDataCR;
        break;
      }
      case kDataCR:
        if (c != '\r') { to->phase = MessageTracker::Phase::Lost; return n; }
        to->chunk = kDataLF;
        ++i;
        break;
      case kDataLF:
        if (c != '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        to->chunk = kSize;
        to->remaining = 0;
        ++i;
        break;
      case kTrailerStart:
        to->chunk = c == '\r' ? kEndLF : kTrailerLine;
        if (c == '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        ++i;
        break;
      case kTrailerLine:
        if (c == '\r') to->chunk = kTrailerLF;
        else if (c == '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        ++i;
        break;
      case kTrailerLF:
        if (c != '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        to->chunk = kTrailerStart;
        ++i;
        break;
      case kEndLF:
        if (c != '\n') { to->phase = MessageTracker::Phase::Lost; return n; }
        to->phase = MessageTracker::Phase::Head;
        to->chunk = kSize;
        to->remaining = 0;
        return i + 1;
      default:
        to->phase = MessageTracker::Phase::Lost;
        return n;
    }
  }
  return n;
}

}  // namespace

const RequestRef* TrackResult::at(std::size_t pos) const {
  for (std::size_t i = 0; i < nrefs; ++i)
    if (pos >= refs[i].begin && pos < refs[i].end)
      return refs[i].kind == RequestRef::Kind::Unidentified ? nullptr : &refs[i];
  return nullptr;
}

void track(const MessageTracker& from, const char* p, std::size_t n, MessageTracker* to, TrackResult* r) {
  *to = from;
  r->nrefs = 0;
  r->head_incomplete = false;
  auto add = [&](RequestRef::Kind kind, std::size_t begin, std::size_t end) -> RequestRef* {
    if (r->nrefs == kMaxRequestRefs) return nullptr;
    RequestRef& ref = r->refs[r->nrefs++];
    ref = RequestRef{};
    ref.kind = kind;
    ref.begin = begin;
    ref.end = end;
    return &ref;
  };
  using Phase = MessageTracker::Phase;
  std::size_t i = 0;
  const RequestRef::Kind body_kind = from.cur.body_identified ? RequestRef::Kind::Continued
                                                              : RequestRef::Kind::Unidentified;
  // The body of a request whose head went out in an earlier write.
  if (to->phase == Phase::Body) {
    const std::size_t take = n < to->remaining ? n : static_cast<std::size_t>(to->remaining);
    add(body_kind, 0, take);
    to->remaining -= take;
    i = take;
    if (to->remaining == 0) to->phase = Phase::Head;
  } else if (to->phase == Phase::Chunked) {
    const std::size_t end = follow_chunked(to, p, 0, n);
    add(to->phase == Phase::Lost ? RequestRef::Kind::Unidentified : body_kind, 0, end);
    i = end;
  }
  while (i < n && to->phase == Phase::Head) {
    // Empty lines before a request line are ignored by servers (RFC 9112, 2.2).
    while (n - i >= 2 && p[i] == '\r' && p[i + 1] == '\n') i += 2;
    if (i == n) break;
    const char* end = find_head_end(p + i, n - i);
    if (end == nullptr) {
      if (!could_be_head(p, i, n)) {
        to->phase = Phase::Lost;
        break;
      }
      r->head_incomplete = true;
      r->head_start = i;
      add(RequestRef::Kind::Unidentified, i, n);
      return;
    }
    const std::size_t he = static_cast<std::size_t>(end - p) + 4;
    Head h;
    if (!parse_strict_head(p, i, he, &h)) {
      to->phase = Phase::Lost;
      break;
    }
    // The head and, when it is here, the body.
    std::size_t body_end = he;
    if (h.switches) {
      to->phase = Phase::Lost;   // a tunnel or another protocol follows the head
    } else if (h.has_length && h.length > 0) {
      const std::uint64_t avail = n - he;
      body_end = h.length <= avail ? he + static_cast<std::size_t>(h.length) : n;
      if (h.length > avail) {
        to->phase = Phase::Body;
        to->remaining = h.length - avail;
      }
    } else if (h.chunked) {
      to->phase = Phase::Chunked;
      to->chunk = kSize;
      to->digits = 0;
      to->remaining = 0;
      body_end = follow_chunked(to, p, he, n);
      if (to->phase == Phase::Lost) body_end = he;   // the head is known; the body is not
    }
    RequestRef* ref = add(RequestRef::Kind::InBuffer, i, he);
    if (ref == nullptr) {
      to->phase = Phase::Lost;
      break;
    }
    ref->method = h.method;
    ref->target = h.target;
    ref->host = h.host;
    ref->host_count = h.host_count;
    // The body: the same request, unless the server may take it for the next request.
    if (body_end > he) {
      if (h.expect_continue) {
        add(RequestRef::Kind::Unidentified, he, body_end);
      } else {
        ref->end = body_end;
      }
    }
    if (to->phase == Phase::Body || to->phase == Phase::Chunked) copy_request(p, h, &to->cur);
    i = body_end;
  }
  if (i < n) add(RequestRef::Kind::Unidentified, i, n);
  if (r->nrefs == kMaxRequestRefs) to->phase = Phase::Lost;   // a ref may be missing: trust nothing more
}

}  // namespace kz::preload
