// Tokens in a plain (non-TLS) byte stream that the proxy splices unchanged: each one is
// reported (the broker audits a refusal), including a token split across reads. The
// bytes themselves are never modified or delayed.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "kz/wire/token.h"

namespace kz {

class PlainTokenScanner {
 public:
  using Sink = void (*)(void* ctx, const char* tok, std::size_t len);
  PlainTokenScanner(Sink sink, void* ctx) : sink_(sink), ctx_(ctx) {}
  // The next n bytes of the stream.
  void feed(const char* p, std::size_t n);
  // The stream ended: a token that ran to its end is reported.
  void finish();

 private:
  void emit(const char* tok, std::size_t len);
  void keep_tail(const char* p, std::size_t n);
  Sink sink_;
  void* ctx_;
  // The end of the previous chunk when it could be the start of a token (a prefix
  // fragment, or a token that ran to the end), and room to join it with the next chunk.
  std::unique_ptr<char[]> buf_;
  std::size_t tail_len_ = 0;
  static constexpr std::size_t kTailMax = wire::kMaxTokenLen;
};

}  // namespace kz
