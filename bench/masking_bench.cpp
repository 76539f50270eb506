// Masking throughput on output with no secret (the common case) and with a secret every
// ~1 KiB, for 1, 8 and 32 secrets (each with all its encoded variants).
//   build/bin/masking_bench
#include <benchmark/benchmark.h>

#include <random>

#include "masking/masker.h"

namespace {

std::vector<std::string> make_secrets(int n) {
  std::mt19937 rng(7);
  const std::string a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s = "sk-";
    for (int j = 0; j < 40; ++j) s += a[rng() % a.size()];
    out.push_back(s);
  }
  return out;
}

std::string make_text(std::size_t n, const std::vector<std::string>* embed) {
  std::mt19937 rng(11);
  std::string t;
  t.reserve(n);
  while (t.size() < n) {
    // Printable log-like text: lower-case words and punctuation, no secret prefix "sk-".
    t += static_cast<char>("abcdefghijklmnopqrstuvwxyz    .,:\n"[rng() % 34]);
    if (embed != nullptr && t.size() % 1024 == 0) t += (*embed)[rng() % embed->size()];
  }
  t.resize(n);
  return t;
}

void run(benchmark::State& state, bool with_matches) {
  const auto secrets = make_secrets(static_cast<int>(state.range(0)));
  std::vector<std::string_view> views(secrets.begin(), secrets.end());
  auto patterns = kz::MaskPatterns::build(views);
  const std::string chunk = make_text(64 * 1024, with_matches ? &secrets : nullptr);
  kz::StreamMasker m(patterns);
  std::string out;
  out.reserve(chunk.size() * 2);
  for (auto _ : state) {
    out.clear();
    m.feed(chunk, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(chunk.size()));
  state.counters["patterns"] = static_cast<double>(patterns->pattern_count());
}

void BM_MaskNoMatch(benchmark::State& s) { run(s, false); }
void BM_MaskMatchEveryKiB(benchmark::State& s) { run(s, true); }
BENCHMARK(BM_MaskNoMatch)->Arg(1)->Arg(8)->Arg(32);
BENCHMARK(BM_MaskMatchEveryKiB)->Arg(1)->Arg(8)->Arg(32);

}  // namespace

BENCHMARK_MAIN();
