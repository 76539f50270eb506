// Resolution of N secrets whose providers each take a known time: the wall time should
// be about the slowest provider (ratio ≈ 1), not the sum.
//   build/bin/resolve_bench
// Latency is injected with the exec provider (`sleep`), spread evenly from 50 ms to 200 ms.
#include <benchmark/benchmark.h>

#include <cstdio>

#include "config/config.h"
#include "resolve/resolver.h"

namespace {

kz::Config make_config(int n, double* slowest_s, bool no_latency = false) {
  std::string toml = "[secrets]\n";
  *slowest_s = 0;
  for (int i = 0; i < n; ++i) {
    const double lat = no_latency ? 0.0 : n == 1 ? 0.2 : 0.05 + 0.15 * i / (n - 1);
    *slowest_s = std::max(*slowest_s, lat);
    char line[160];
    std::snprintf(line, sizeof line, "S%d = { provider = \"exec\", ref = \"sleep %.3f; printf value-%d\" }\n", i,
                  lat, i);
    toml += line;
  }
  auto c = kz::parse_config(toml, "/tmp/bench.toml");
  if (!c) std::abort();
  if (slowest_s != nullptr && no_latency) *slowest_s = 0;
  return std::move(c.value());
}

void BM_ResolveParallel(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  double slowest = 0;
  const kz::Config cfg = make_config(n, &slowest);
  double total = 0;
  for (auto _ : state) {
    const auto t0 = kz::Clock::now();
    auto r = kz::resolve_secrets(cfg, {});
    const double wall = std::chrono::duration<double>(kz::Clock::now() - t0).count();
    if (!r || r->size() != static_cast<std::size_t>(n)) state.SkipWithError("resolution failed");
    total += wall;
    state.SetIterationTime(wall);
  }
  const double mean = total / static_cast<double>(state.iterations());
  state.counters["slowest_ms"] = slowest * 1000;
  state.counters["sum_ms"] = n == 1 ? 200 : (0.05 + 0.2) / 2 * n * 1000;
  state.counters["wall_over_slowest"] = mean / slowest;
}
// The same secrets with no injected latency: what N process spawns cost on this machine
// (the exec provider starts `sh`), to be subtracted from the wall time above.
void BM_ResolveSpawnOnly(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  double slowest = 0;
  const kz::Config cfg = make_config(n, &slowest, true);
  for (auto _ : state) {
    const auto t0 = kz::Clock::now();
    auto r = kz::resolve_secrets(cfg, {});
    if (!r) state.SkipWithError("resolution failed");
    state.SetIterationTime(std::chrono::duration<double>(kz::Clock::now() - t0).count());
  }
}
BENCHMARK(BM_ResolveSpawnOnly)->Arg(1)->Arg(8)->Arg(32)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ResolveParallel)->Arg(1)->Arg(8)->Arg(32)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
