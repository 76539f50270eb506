#include "kz/preload/http_rewrite.h"
#include "kz/preload/find_bytes.h"

#include <cstring>

#include "ascii.h"

namespace kz::preload {

namespace {

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Trim spaces/tabs from both ends of [b, e).
void trim(const char* p, std::size_t* b, std::size_t* e) {
  while (*b < *e && (p[*b] == ' ' || p[*b] == '\t')) ++*b;
  while (*e > *b && (p[*e - 1] == ' ' || p[*e - 1] == '\t')) --*e;
}

// Does the comma-separated list [b, e) contain `word` (case-insensitive)?
bool list_has(const char* p, std::size_t b, std::size_t e, const char* word) {
  const std::size_t wl = std::strlen(word);
  std::size_t i = b;
  while (i < e) {
    std::size_t j = i;
    while (j < e && p[j] != ',') ++j;
    std::size_t tb = i, te = j;
    trim(p, &tb, &te);
    if (te - tb == wl && ascii_ieq(p + tb, word, wl)) return true;
    i = j + 1;
  }
  return false;
}

// One chunk of a chunked body: its size digits and its data.
struct Chunk {
  Span digits;
  std::uint64_t size = 0;
  std::size_t data_pos = 0;      // data starts here (may run past the buffer)
  std::int64_t delta = 0;
};

constexpr std::size_t kMaxChunks = 64;

// Walks chunks from `start`; stops at the buffer end, a malformed line, or the last chunk.
// (Where the body stands afterwards is chunked_tail's question.)
std::size_t parse_chunks(const char* p, std::size_t n, std::size_t start, Chunk* chunks, std::size_t max) {
  std::size_t count = 0, i = start;
  while (i < n && count < max) {
    std::size_t j = i;
    std::uint64_t size = 0;
    while (j < n && hex_value(p[j]) >= 0 && j - i < 15) size = size * 16 + static_cast<unsigned>(hex_value(p[j++]));
    if (j == i || j >= n) break;
    const std::size_t digits_end = j;
    while (j < n && p[j] != '\r' && p[j] != '\n') {   // chunk extensions
      if (p[j] != ';' && p[j] != ' ' && p[j] != '\t' && j == digits_end) return count;
      ++j;
    }
    if (j + 1 >= n || p[j] != '\r' || p[j + 1] != '\n') break;
    Chunk c;
    c.digits = Span{i, digits_end - i};
    c.size = size;
    c.data_pos = j + 2;
    chunks[count++] = c;
    if (size == 0) break;
    if (c.data_pos + size + 2 > n) break;   // runs past this buffer
    if (p[c.data_pos + size] != '\r' || p[c.data_pos + size + 1] != '\n') {
      --count;   // not a chunk after all
      break;
    }
    i = c.data_pos + size + 2;
  }
  return count;
}

}  // namespace

ChunkedTail chunked_tail(const char* p, std::size_t n, std::size_t start) {
  constexpr std::size_t kMaxLine = 4096;   // size line with extensions, or one trailer
  std::size_t i = start;
  while (i < n) {
    std::size_t j = i;
    std::uint64_t size = 0;
    while (j < n && hex_value(p[j]) >= 0) {
      if (j - i >= 15) return ChunkedTail::Malformed;
      size = size * 16 + static_cast<unsigned>(hex_value(p[j++]));
    }
    if (j == n) return ChunkedTail::Incomplete;
    if (j == i) return ChunkedTail::Malformed;
    if (p[j] != '\r' && p[j] != ';' && p[j] != ' ' && p[j] != '\t') return ChunkedTail::Malformed;
    while (j < n && p[j] != '\n') {
      if (j - i > kMaxLine) return ChunkedTail::Malformed;
      ++j;
    }
    if (j == n) return ChunkedTail::Incomplete;
    if (p[j - 1] != '\r') return ChunkedTail::Malformed;
    const std::size_t data = j + 1;
    if (size == 0) {
      // Trailer section: header lines, then an empty line.
      std::size_t k = data;
      while (true) {
        if (n - k < 2) return ChunkedTail::Incomplete;
        if (p[k] == '\r' && p[k + 1] == '\n') return ChunkedTail::Ended;
        const void* nl = std::memchr(p + k, '\n', n - k < kMaxLine ? n - k : kMaxLine);
        if (nl == nullptr) return n - k < kMaxLine ? ChunkedTail::Incomplete : ChunkedTail::Malformed;
        k = static_cast<std::size_t>(static_cast<const char*>(nl) - p) + 1;
      }
    }
    if (size > n || data + size + 2 > n) return ChunkedTail::Incomplete;
    if (p[data + size] != '\r' || p[data + size + 1] != '\n') return ChunkedTail::Malformed;
    i = data + size + 2;
  }
  return ChunkedTail::Boundary;
}

bool looks_like_request_start(const char* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n && i < 16 && is_upper(p[i])) ++i;
  return i >= 3 && i < n && p[i] == ' ';
}

HttpHead parse_head(const char* p, std::size_t n) {
  HttpHead h;
  if (!looks_like_request_start(p, n)) return h;
  std::size_t sp1 = 0;
  while (p[sp1] != ' ') ++sp1;
  const char* eol = static_cast<const char*>(std::memchr(p, '\n', n));
  if (eol == nullptr) return h;
  const std::size_t line_end = static_cast<std::size_t>(eol - p);   // index of '\n'
  if (line_end < sp1 + 12 || p[line_end - 1] != '\r') return h;
  // "... SP HTTP/1.x\r\n"
  const std::size_t ver = line_end - 9;
  if (std::memcmp(p + ver, "HTTP/1.", 7) != 0 || p[ver - 1] != ' ') return h;
  h.is_request = true;
  h.method = Span{0, sp1};
  h.target = Span{sp1 + 1, ver - 1 - (sp1 + 1)};
  const char* end = find_head_end(p, n);
  if (end == nullptr) return h;
  h.complete = true;
  h.head_end = static_cast<std::size_t>(end - p) + 4;
  int cl_count = 0;
  bool cl_ok = true;
  for (std::size_t i = line_end + 1; i + 2 <= h.head_end - 2;) {
    const char* e = static_cast<const char*>(std::memchr(p + i, '\n', h.head_end - i));
    if (e == nullptr) break;
    std::size_t le = static_cast<std::size_t>(e - p);
    std::size_t ve = le > i && p[le - 1] == '\r' ? le - 1 : le;
    const char* colon = static_cast<const char*>(std::memchr(p + i, ':', ve - i));
    if (colon != nullptr) {
      const std::size_t name_len = static_cast<std::size_t>(colon - (p + i));
      std::size_t vb = i + name_len + 1, vend = ve;
      trim(p, &vb, &vend);
      if (name_len == 14 && ascii_ieq(p + i, "content-length", 14)) {
        ++cl_count;
        std::uint64_t v = 0;
        if (vb == vend || vend - vb > 15) cl_ok = false;
        for (std::size_t k = vb; k < vend; ++k) {
          if (p[k] < '0' || p[k] > '9') cl_ok = false;
          else v = v * 10 + static_cast<unsigned>(p[k] - '0');
        }
        h.content_length = v;
        h.cl_value = Span{vb, vend - vb};
      } else if (name_len == 17 && ascii_ieq(p + i, "transfer-encoding", 17)) {
        if (list_has(p, vb, vend, "chunked")) h.chunked = true;
      } else if (name_len == 4 && ascii_ieq(p + i, "host", 4)) {
        ++h.host_count;
        h.host = Span{vb, vend - vb};
      } else if (name_len == 6 && ascii_ieq(p + i, "expect", 6)) {
        if (vend - vb == 12 && ascii_ieq(p + vb, "100-continue", 12)) h.expect_continue = true;
      }
    }
    i = le + 1;
  }
  // RFC 9112: chunked wins over Content-Length; several Content-Length headers are an error.
  h.has_content_length = cl_count == 1 && cl_ok && !h.chunked;
  return h;
}

std::size_t format_dec(std::uint64_t v, char* out, std::size_t cap) {
  char tmp[24];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  if (n > cap) return 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

std::size_t format_hex(std::uint64_t v, char* out, std::size_t cap) {
  static const char digits[] = "0123456789abcdef";
  char tmp[24];
  std::size_t n = 0;
  do {
    tmp[n++] = digits[v % 16];
    v /= 16;
  } while (v > 0);
  if (n > cap) return 0;
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

ApplyResult apply_edits(const char* in, std::size_t n, Edit* edits, std::size_t k, const FrameContext& ctx,
                        char* out) {
  ApplyResult r;
  const HttpHead h = parse_head(in, n);
  const bool body_cl = h.is_request && h.complete && h.has_content_length;
  const bool cl_complete = body_cl && h.head_end + h.content_length <= n;
  std::size_t chunk_start = n;
  if (h.is_request && h.complete && h.chunked) chunk_start = h.head_end;
  else if (!h.is_request && ctx.in_chunked_body) chunk_start = 0;
  Chunk chunks[kMaxChunks];
  const std::size_t nchunks = chunk_start < n ? parse_chunks(in, n, chunk_start, chunks, kMaxChunks) : 0;

  // Classify every length-changing edit; drop the ones the framing cannot follow.
  std::int64_t cl_delta = 0;
  for (std::size_t i = 0; i < k; ++i) {
    Edit& e = edits[i];
    if (e.dropped || e.repl_len == e.len) continue;
    const std::int64_t d = static_cast<std::int64_t>(e.repl_len) - static_cast<std::int64_t>(e.len);
    bool ok = false;
    if (ctx.fixup_lengths && e.repl_len < e.len) {
      if (h.is_request && h.complete && e.pos + e.len <= h.head_end) {
        ok = true;   // inside the head: nothing counts its bytes
      } else if (cl_complete && e.pos >= h.head_end && e.pos + e.len <= h.head_end + h.content_length) {
        cl_delta += d;
        ok = true;
      } else {
        for (std::size_t c = 0; c < nchunks; ++c) {
          if (chunks[c].size > 0 && e.pos >= chunks[c].data_pos &&
              e.pos + e.len <= chunks[c].data_pos + chunks[c].size) {
            chunks[c].delta += d;
            ok = true;
            break;
          }
        }
      }
    }
    if (!ok) {
      e.dropped = true;
      ++r.dropped;
    }
  }

  // Emit: walk the input once, splicing token edits and the framing numbers in order.
  char cl_digits[24];
  std::size_t cl_digits_len = 0;
  if (cl_delta != 0)
    cl_digits_len = format_dec(static_cast<std::uint64_t>(static_cast<std::int64_t>(h.content_length) + cl_delta),
                               cl_digits, sizeof cl_digits);
  std::size_t o = 0, i = 0, ei = 0, ci = 0;
  auto copy_to = [&](std::size_t upto) {
    if (upto > i) {
      std::memmove(out + o, in + i, upto - i);
      o += upto - i;
      i = upto;
    }
  };
  while (true) {
    // Next splice point among: edit, CL digits, chunk digits.
    std::size_t next = n;
    int which = 0;
    while (ei < k && edits[ei].dropped) ++ei;
    while (ci < nchunks && chunks[ci].delta == 0) ++ci;
    if (ei < k && edits[ei].pos < next) { next = edits[ei].pos; which = 1; }
    if (cl_digits_len > 0 && h.cl_value.pos >= i && h.cl_value.pos < next) { next = h.cl_value.pos; which = 2; }
    if (ci < nchunks && chunks[ci].digits.pos < next) { next = chunks[ci].digits.pos; which = 3; }
    if (which == 0) break;
    copy_to(next);
    if (which == 1) {
      std::memcpy(out + o, edits[ei].repl, edits[ei].repl_len);
      o += edits[ei].repl_len;
      i += edits[ei].len;
      ++r.applied;
      ++ei;
    } else if (which == 2) {
      std::memcpy(out + o, cl_digits, cl_digits_len);
      o += cl_digits_len;
      i += h.cl_value.len;
      cl_digits_len = 0;
    } else {
      char hex[24];
      const std::size_t hl = format_hex(static_cast<std::uint64_t>(static_cast<std::int64_t>(chunks[ci].size) +
                                                                   chunks[ci].delta),
                                        hex, sizeof hex);
      std::memcpy(out + o, hex, hl);
      o += hl;
      i += chunks[ci].digits.len;
      ++ci;
    }
  }
  copy_to(n);
  r.out_len = o;
  return r;
}

}  // namespace kz::preload
