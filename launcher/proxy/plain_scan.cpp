#include "proxy/plain_scan.h"

#include <cstring>

#include "kz/wire/scanner.h"

namespace kz {

void PlainTokenScanner::emit(const char* tok, std::size_t len) {
  // A marker alone is no token (a token has text after its marker).
  if (len > wire::marker_at(tok, len)) sink_(ctx_, tok, len);
}

void PlainTokenScanner::keep_tail(const char* p, std::size_t n) {
  if (n == 0) return;
  if (n > kTailMax) {   // longer than any token: report it as far as it goes
    emit(p, n);
    return;
  }
  if (!buf_) buf_.reset(new char[2 * kTailMax]);
  std::memmove(buf_.get(), p, n);
  tail_len_ = n;
}

void PlainTokenScanner::feed(const char* p, std::size_t n) {
  if (n == 0) return;
  std::size_t start = 0;
  if (tail_len_ > 0) {
    // Join the kept tail with the start of this chunk, enough to finish one token. A
    // marker that overlaps itself ("kztok" then "ztokqx...") may start at any suffix of
    // a kept fragment, not only at its start: each is tried, longest first.
    const std::size_t m = n < kTailMax ? n : kTailMax;
    char* j = buf_.get();
    std::memcpy(j + tail_len_, p, m);
    const std::size_t jl = tail_len_ + m;
    const std::size_t old = tail_len_;
    tail_len_ = 0;
    const bool fragment = wire::marker_at(j, old) == 0;   // else a token that ran to the end
    std::size_t s = 0;
    while (fragment && s < old && !(wire::is_marker_fragment(j + s, old - s) && wire::marker_at(j + s, jl - s) != 0))
      ++s;
    if (s < old) {
      const std::size_t ext = wire::token_extent(j + s, jl - s);
      if (s + ext == jl && m == n) {
        keep_tail(j + s, ext);   // still running: the whole chunk continues the token
        return;
      }
      emit(j + s, ext);
      start = s + ext > old ? s + ext - old : 0;
    } else if (m == n) {
      for (s = 0; s < old; ++s)
        if (wire::is_marker_fragment(j + s, jl - s)) {
          keep_tail(j + s, jl - s);   // a prefix fragment, longer now
          return;
        }
    }
  }
  std::size_t pos = start;
  while (pos < n) {
    const std::size_t off = wire::find_token_prefix(p + pos, n - pos);
    if (off == n - pos) break;
    const std::size_t t = pos + off;
    const std::size_t ext = wire::token_extent(p + t, n - t);
    if (t + ext == n) {
      keep_tail(p + t, ext);
      return;
    }
    emit(p + t, ext);
    pos = t + ext;
  }
  const std::size_t frag = wire::trailing_prefix_len(p + start, n - start);
  if (frag > 0) keep_tail(p + n - frag, frag);
}

void PlainTokenScanner::finish() {
  if (tail_len_ > 0) emit(buf_.get(), tail_len_);
  tail_len_ = 0;
}

}  // namespace kz
