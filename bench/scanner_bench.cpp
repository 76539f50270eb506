// The shim's fast path on writes without a token (the common case):
//  - kz::wire::find_token_prefix over random printable buffers and random bytes (bytes/s);
//  - the whole outbound_write decision (prefix scan, trailing-prefix check, request-line
//    and Basic pre-checks, the empty-table check) on HTTP-looking buffers (ns per call),
//    with a broker and a writer that abort if they are ever called.
//  - the inbound stream of a connection that carries a value (every read is scanned for
//    each encoded form of the value, framing followed, the tail held): bytes/s of a
//    Content-Length response read in 16 KiB records.
//   build/bin/scanner_bench
#include <benchmark/benchmark.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "kz/preload/conn_table.h"
#include "kz/preload/inbound.h"
#include "kz/wire/fingerprint.h"
#include "kz/wire/value_forms.h"
#include "kz/wire/scanner.h"
#include "kz/preload/outbound.h"

namespace {

// Random printable ASCII (0x20..0x7e) with no token marker ("KZ_TOK_" or a shaped
// token's marker, wire/token.h) in it.
std::string printable(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>(0x20 + rng() % 95);
  for (std::size_t p = 0; p < s.size(); ++p)
    if (kz::wire::marker_at(s.data() + p, s.size() - p) != 0) s[p] = ' ';
  return s;
}

void BM_FindTokenPrefix(benchmark::State& state) {
  const std::string buf = printable(static_cast<std::size_t>(state.range(0)), 42);
  for (auto _ : state) {
    std::size_t at = kz::wire::find_token_prefix(buf.data(), buf.size());
    benchmark::DoNotOptimize(at);
    if (at != buf.size()) state.SkipWithError("found a token prefix in a buffer without one");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FindTokenPrefix)->Arg(64)->Arg(1024)->Arg(16 << 10)->Arg(1 << 20);

// Random bytes, as a compressed or encrypted upload carries (scripts/bench-blind's body):
// a candidate that is no marker every ~9 KiB, so most 64 KiB writes meet a few.
void BM_FindTokenPrefixBinary(benchmark::State& state) {
  std::mt19937 rng(7);
  std::string buf(static_cast<std::size_t>(state.range(0)), '\0');
  for (auto& c : buf) c = static_cast<char>(rng() & 0xff);
  for (std::size_t p = 0; p < buf.size(); ++p)
    if (kz::wire::marker_at(buf.data() + p, buf.size() - p) != 0) buf[p] = ' ';
  for (auto _ : state) {
    std::size_t at = kz::wire::find_token_prefix(buf.data(), buf.size());
    benchmark::DoNotOptimize(at);
    if (at != buf.size()) state.SkipWithError("found a token prefix in a buffer without one");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FindTokenPrefixBinary)->Arg(64 << 10);

#if defined(__x86_64__)
// The floor of any scan that must look at every byte once: one AVX2 load and one OR per
// 32 bytes, nothing compared. BM_FindTokenPrefixBinary over this is what the marker
// filter costs beyond reading the buffer.
__attribute__((target("avx2"))) std::uint64_t or_every_byte(const char* p, std::size_t n) {
  __m256i acc = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64));
    const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96));
    acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d)));
  }
  std::uint64_t r = static_cast<std::uint64_t>(_mm256_extract_epi64(acc, 0) | _mm256_extract_epi64(acc, 1) |
                                               _mm256_extract_epi64(acc, 2) | _mm256_extract_epi64(acc, 3));
  for (; i < n; ++i) r |= static_cast<unsigned char>(p[i]);
  return r;
}

void BM_ReadEveryByteFloor(benchmark::State& state) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2")) {
    state.SkipWithError("no AVX2");
    return;
  }
  std::mt19937 rng(7);
  std::string buf(static_cast<std::size_t>(state.range(0)), '\0');
  for (auto& c : buf) c = static_cast<char>(rng() & 0xff);
  for (auto _ : state) {
    std::uint64_t r = or_every_byte(buf.data(), buf.size());
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ReadEveryByteFloor)->Arg(64 << 10);
#endif

// An API request of exactly n bytes: request line, headers (a plain API key, no token),
// and a JSON body padded to size.
std::string http_request(std::size_t n) {
  const std::string head_start =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\n"
      "Authorization: Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyz\r\n"
      "Content-Type: application/json\r\nAccept: */*\r\nContent-Length: ";
  std::string body = "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"";
  const std::string tail = "\"}]}";
  // The Content-Length digits depend on the body size; the body size on the rest.
  for (std::size_t digits = 1; digits < 8; ++digits) {
    const std::size_t fixed = head_start.size() + digits + 4 + body.size() + tail.size();
    if (fixed > n) break;
    const std::size_t body_len = n - head_start.size() - digits - 4;
    if (std::to_string(body_len).size() != digits) continue;
    std::string text = printable(n - fixed, 7);
    for (auto& c : text)
      if (c == '"' || c == '\\') c = '.';
    return head_start + std::to_string(body_len) + "\r\n\r\n" + body + text + tail;
  }
  std::abort();
}

kz::wire::Decision abort_swap(void*, kz::preload::ConnState*, const char*, std::size_t, bool, char*, std::size_t,
                              std::size_t*, std::size_t*) {
  std::abort();
}
void abort_report(void*, kz::preload::ConnState*, const char*, std::size_t) { std::abort(); }
bool abort_redact(void*, kz::preload::ConnState*, unsigned char*, std::size_t, std::uint32_t) { std::abort(); }
bool abort_write(void*, const char*, std::size_t) { std::abort(); }

constinit kz::preload::ConnTable g_table;   // stays empty: count() == 0

void run_outbound(benchmark::State& state, const std::string& buf, bool fixup) {
  kz::preload::BrokerOps b;
  b.swap = abort_swap;
  b.report = abort_report;
  b.redact = abort_redact;
  kz::preload::WriteOps w;
  w.write_all = abort_write;
  const void* key = &state;
  for (auto _ : state) {
    auto r = kz::preload::outbound_write(g_table, key, buf.data(), buf.size(), fixup, b, w);
    benchmark::DoNotOptimize(r);
    if (r != kz::preload::WriteOutcome::PassThrough) state.SkipWithError("not the fast path");
  }
  if (g_table.count() != 0) state.SkipWithError("the fast path created connection state");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(buf.size()));
}

// A whole request in one write (no fixup: with KZ_FIXUP_LENGTHS=1 a request head takes
// the slow path, since it might have to be held).
void BM_OutboundWriteFastPath(benchmark::State& state) {
  const std::string buf = http_request(static_cast<std::size_t>(state.range(0)));
  if (buf.size() != static_cast<std::size_t>(state.range(0))) state.SkipWithError("bad request size");
  run_outbound(state, buf, false);
}
BENCHMARK(BM_OutboundWriteFastPath)->Arg(1024)->Arg(16 << 10);

// Body bytes of a larger upload (no request line), with fixup on.
void BM_OutboundWriteFastPathBody(benchmark::State& state) {
  std::string buf = printable(static_cast<std::size_t>(state.range(0)), 9);
  buf.front() = '{';
  buf.back() = '}';   // not a 'K' that could start "KZ_TOK_" (that takes the slow path)
  run_outbound(state, buf, true);
}
BENCHMARK(BM_OutboundWriteFastPathBody)->Arg(1024)->Arg(16 << 10);

}  // namespace

// A response on a connection that carries one 51-byte key: fingerprints of its forms as
// the broker gives them, a body of printable text (no hit), read in 16 KiB records.
void BM_InboundStream(benchmark::State& state) {
  const std::string key = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
  auto table = std::make_unique<kz::preload::ConnTable>();
  const void* conn = reinterpret_cast<const void*>(0x5000);
  kz::preload::ConnState* st = table->find_or_create(conn);
  for (std::size_t f = 0; f < kz::wire::kValueFormCount; ++f) {
    char enc[kz::wire::kMaxFormLen];
    const std::size_t n = kz::wire::encode_form(static_cast<kz::wire::ValueForm>(f),
                                                reinterpret_cast<const unsigned char*>(key.data()), key.size(), enc,
                                                sizeof enc);
    kz::preload::Fingerprint p;
    p.base = 0x1d3f5a7c9b2e4ULL;
    p.hash = kz::wire::fp_hash(reinterpret_cast<const unsigned char*>(enc), n, p.base);
    p.quick_base = 0x9e3779b97f4a7c15ULL;
    p.quick = kz::wire::fq_hash(reinterpret_cast<const unsigned char*>(enc), n, p.quick_base);
    p.len = static_cast<std::uint32_t>(n);
    p.form = static_cast<std::uint32_t>(f);
    st->add_fingerprint(p);
  }
  const std::size_t body = static_cast<std::size_t>(state.range(0));
  const std::string record = printable(16 << 10, 9);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body) + "\r\n\r\n";
  kz::preload::BrokerOps b;
  b.redact = abort_redact;
  unsigned char out[16 << 10];
  for (auto _ : state) {
    kz::preload::stream_feed(*st, reinterpret_cast<const unsigned char*>(head.data()), head.size(), b);
    std::size_t left = body;
    while (left > 0) {
      const std::size_t n = left < record.size() ? left : record.size();
      kz::preload::stream_feed(*st, reinterpret_cast<const unsigned char*>(record.data()), n, b);
      left -= n;
      while (kz::preload::stream_take(st->in, out, sizeof out, false) > 0) {
      }
    }
    while (kz::preload::stream_take(st->in, out, sizeof out, false) > 0) {
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  table->remove(conn);
}
BENCHMARK(BM_InboundStream)->Arg(1 << 20);

BENCHMARK_MAIN();
