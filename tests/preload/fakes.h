// Fakes for the shim's core: a broker that knows a few tokens (behaving like the
// launcher's broker in launcher/secrets/decide.cpp: exact token -> Allow/Refuse, the start
// of a known token at the end of a write -> Incomplete, anything else -> Unknown) and a
// TLS writer that appends to a string.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kz/preload/outbound.h"
#include "kz/wire/value_forms.h"

namespace kz::preload::test {

// Tokens are "KZ_TOK_" + base62. None of these contain a 'K' after the prefix, so a
// buffer can only end in a proper prefix of "KZ_TOK_" inside the prefix itself.
inline const std::string kTokSame = "KZ_TOK_sameLenToken0123456789A";     // 30 -> 30-byte value
inline const std::string kValSame = "sk-live-0123456789abcdefghijkl";
inline const std::string kTokShort = "KZ_TOK_shortSecretToken9876543";    // 30 -> 10-byte value
inline const std::string kValShort = "pw-1234567";
inline const std::string kTokRefused = "KZ_TOK_refusedToken0000000000Z";  // known, refused
inline const std::string kTokUnknown = "KZ_TOK_unknownTokenQQQQQQQQQQQ";  // not of this run

struct FakeBroker {
  struct SwapCall {
    std::string tok;
    bool at_end;
    std::string method, path;   // the connection's request line when the swap was asked
    bool had_state;
  };
  std::map<std::string, std::string> values{{kTokSame, kValSame}, {kTokShort, kValShort}};
  std::set<std::string> refused{kTokRefused};
  std::vector<SwapCall> swaps;
  std::vector<std::string> reports;
  std::vector<std::string> redacts;
  std::vector<std::string> coded;   // report_coded calls (Content-Encoding values)
  bool abort_on_call = false;   // benchmarks / fast-path tests: any call is a failure

  BrokerOps ops() {
    BrokerOps b;
    b.ctx = this;
    b.swap = &FakeBroker::swap;
    b.report = &FakeBroker::report;
    b.redact = &FakeBroker::redact;
    b.report_coded = &FakeBroker::report_coded;
    return b;
  }

  std::size_t allowed() const {
    std::size_t n = 0;
    for (const auto& s : swaps) n += values.count(s.tok);
    return n;
  }

 private:
  static wire::Decision swap(void* ctx, ConnState* st, const char* tok, std::size_t len, bool at_end, char* value_out,
                             std::size_t cap, std::size_t* value_len, std::size_t* token_len) {
    auto* self = static_cast<FakeBroker*>(ctx);
    EXPECT_FALSE(self->abort_on_call) << "broker called on the fast path";
    const std::string t(tok, len);
    SwapCall c{t, at_end, "", "", st != nullptr};
    if (st != nullptr) {
      c.method.assign(st->method, st->method_len);
      c.path.assign(st->path, st->path_len);
    }
    self->swaps.push_back(c);
    if (auto it = self->values.find(t); it != self->values.end()) {
      if (it->second.size() > cap) return wire::Decision::Refuse;
      std::memcpy(value_out, it->second.data(), it->second.size());
      *value_len = it->second.size();
      return wire::Decision::Allow;
    }
    if (self->refused.count(t)) return wire::Decision::Refuse;
    if (at_end) {
      auto starts = [&](const std::string& known) { return known.size() > t.size() && known.compare(0, t.size(), t) == 0; };
      for (const auto& [k, v] : self->values)
        if (starts(k)) { *token_len = k.size(); return wire::Decision::Incomplete; }
      for (const auto& k : self->refused)
        if (starts(k)) { *token_len = k.size(); return wire::Decision::Incomplete; }
    }
    return wire::Decision::Unknown;
  }
  static void report(void* ctx, ConnState*, const char* tok, std::size_t len) {
    auto* self = static_cast<FakeBroker*>(ctx);
    EXPECT_FALSE(self->abort_on_call) << "broker called on the fast path";
    self->reports.emplace_back(tok, len);
  }
  static bool redact(void* ctx, ConnState*, unsigned char* p, std::size_t len, std::uint32_t form) {
    auto* self = static_cast<FakeBroker*>(ctx);
    EXPECT_FALSE(self->abort_on_call) << "broker called on the fast path";
    const std::string seen(reinterpret_cast<const char*>(p), len);
    self->redacts.push_back(seen);
    // Like the broker: confirm the bytes are a known value in that form; replace them
    // with the token in the same form and length.
    const auto f = static_cast<wire::ValueForm>(form);
    for (const auto& [tok, val] : self->values) {
      char enc[wire::kMaxFormLen];
      const std::size_t n =
          wire::encode_form(f, reinterpret_cast<const unsigned char*>(val.data()), val.size(), enc, sizeof enc);
      if (n == len && std::memcmp(enc, p, len) == 0) {
        return wire::token_in_form(f, tok.data(), tok.size(), len, reinterpret_cast<char*>(p), len) == len;
      }
    }
    return false;
  }
  static void report_coded(void* ctx, ConnState*, const char* coding, std::size_t len) {
    static_cast<FakeBroker*>(ctx)->coded.emplace_back(coding, len);
  }
};

// The real TLS write: appends to `sent`; can be made to fail.
struct FakeWriter {
  std::string sent;
  std::vector<std::string> calls;
  bool fail = false;

  WriteOps ops() {
    WriteOps w;
    w.ctx = this;
    w.write_all = &FakeWriter::write_all;
    return w;
  }

 private:
  static bool write_all(void* ctx, const char* p, std::size_t n) {
    auto* self = static_cast<FakeWriter*>(ctx);
    if (self->fail) return false;
    self->calls.emplace_back(p, n);
    self->sent.append(p, n);
    return true;
  }
};

// One TLS write as the hook does it: PassThrough sends the caller's buffer itself.
inline WriteOutcome hook_write(ConnTable& t, const void* key, const std::string& buf, bool fixup, FakeBroker& b,
                               FakeWriter& w) {
  const WriteOutcome r = outbound_write(t, key, buf.data(), buf.size(), fixup, b.ops(), w.ops());
  if (r == WriteOutcome::PassThrough && !w.fail) {
    w.calls.push_back(buf);
    w.sent += buf;
  }
  return r;
}

inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

}  // namespace kz::preload::test
