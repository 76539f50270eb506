// The PDP's CPU per decision without the network: PdpService::handle for POST /v1/decide
// as scripts/bench-pdp sends it (its bundle, scripts/bench-files/pdp_bundle.yaml,
// an RS256 identity token whose verified claims are cached after the first request),
// with the decision log as `kz server start` writes it (a batched AuditTrail, hash chain
// and head file) to a file in a temporary directory.
//
// Process CPU time (MeasureProcessCPUTime): the log's writer thread is counted with the
// request thread, so the number is what a decision costs the machine, and it holds on a
// loaded machine where wall time does not. Records still queued when the loop ends are
// written after the timing stops (at most the last 2 ms' worth).
//
//   BM_Decide            the whole handler: identity (cache hit), body, policy, reply, record
//   BM_DecideNoLog       the same with a recorder that drops the record (what the log costs)
//   BM_DecisionRecord/0  one decision record through the log, built as a json tree
//                        (how the PDP wrote them before the serialised form)
//   BM_DecisionRecord/1  the same record, serialised as the PDP now writes it
//
// Run: build/bench/pdp_bench   (add --benchmark_repetitions=5 on a loaded machine)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "../tests/support/jwt_test_signer.h"
#include "audit/audit_trail.h"
#include "core/json_dump.h"
#include "server/pdp_metrics.h"
#include "server/pdp_service.h"
#include "server/pdp_state.h"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The bundle scripts/bench-pdp uses (KZ_PDP_BUNDLE: its path in the source tree, from
// bench/CMakeLists.txt).
std::string bundle_text() {
  std::ifstream f(KZ_PDP_BUNDLE);
  std::stringstream text;
  text << f.rdbuf();
  if (!f) std::abort();
  return text.str();
}

constexpr const char* kBody = R"({"secrets":[{"name":"DB","provider":"vault","ref":"secret/data/prod/db#password"}]})";

class NullRecorder final : public kz::AuditRecorder {
 public:
  void record(kz::AuditEvent) override {}
};

// A bundle, its JWKS and a token, in a directory removed at the end.
struct Fixture {
  fs::path dir;
  std::shared_ptr<const kz::PdpState> state;
  std::string token;

  Fixture() {
    char tmpl[] = "/tmp/kz-pdp-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    auto signer = kz::test::Signer::make("RS256", "k1");
    std::ofstream(dir / "jwks.json") << json{{"keys", json::array({signer.jwk()})}}.dump();
    std::ofstream(dir / "bundle.yaml") << bundle_text();
    auto st = kz::load_pdp_state((dir / "bundle.yaml").string());
    if (!st) std::abort();
    state = *st;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    token = signer.sign(json{{"iss", "https://auth.bench"}, {"aud", "keyzero"}, {"sub", "bench"}, {"iat", now},
                             {"exp", now + 3600}, {"service", "data-pipeline-agent"}, {"env", "prod"}});
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::unique_ptr<kz::AuditTrail> trail() const {
    kz::AuditTrailOptions o;
    o.path = (dir / "decisions.jsonl").string();
    o.batched = true;
    auto t = kz::AuditTrail::open(std::move(o));
    if (!t) std::abort();
    return std::move(*t);
  }
  kz::HttpRequestView request() const {
    kz::HttpRequestView v;
    v.method = "POST";
    v.target = "/v1/decide";
    v.authorization = "Bearer " + token;
    v.content_type = "application/json";
    v.body = kBody;
    v.source = "127.0.0.1";
    return v;
  }
};

void decide(benchmark::State& state, kz::AuditRecorder& log, const Fixture& f) {
  kz::PdpMetrics metrics;
  kz::PdpServiceOptions so;
  so.log = &log;
  so.metrics = &metrics;
  kz::PdpService service(so, f.state);
  const kz::HttpRequestView req = f.request();
  for (auto _ : state) {
    kz::HttpReply r = service.handle(req);
    if (r.status != 200 || r.body.find("\"allow\":true") == std::string::npos) state.SkipWithError("not an allow");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Decide(benchmark::State& state) {
  Fixture f;
  auto trail = f.trail();
  decide(state, *trail, f);
}

void BM_DecideNoLog(benchmark::State& state) {
  Fixture f;
  NullRecorder none;
  decide(state, none, f);
}

// A decision record as the bench's request produces it.
kz::PdpDecision record(bool serialized) {
  const json claims = {{"iss", "https://auth.bench"}, {"aud", "keyzero"}, {"sub", "bench"}, {"iat", 1800000000},
                       {"exp", 1800003600}, {"service", "data-pipeline-agent"}, {"env", "prod"}};
  const json input = {{"identity", claims},
                      {"secrets", json::array({{{"name", "DB"}, {"provider", "vault"}, {"ref", "secret/data/prod/db#password"}}})},
                      {"request", {{"time", 1800000000}, {"source", "127.0.0.1"}}}};
  const json result = json::array({{{"allow", true}, {"name", "DB"}, {"policy", "policy-0"}, {"provider", "vault"},
                                    {"reason", "allowed by policy-0 rule 0"}, {"ref", "secret/data/prod/db#password"},
                                    {"rule", "policy-0/rule-0"}}});
  kz::PdpDecision d{"allow", "0123456789abcdef0123456789abcdef", "decide",
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "127.0.0.1", "bench", {}, {}};
  if (serialized) {
    d.input_json = kz::dump_json(input);
    d.result_json = kz::dump_json(result);
  } else {
    d.input = input;
    d.result = result;
  }
  return d;
}

void BM_DecisionRecord(benchmark::State& state) {
  Fixture f;
  auto trail = f.trail();
  const kz::PdpDecision proto = record(state.range(0) != 0);
  for (auto _ : state) {
    kz::PdpDecision d = proto;   // (the copy is part of both: the PDP builds one per request)
    trail->record(std::move(d));
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_Decide)->MeasureProcessCPUTime();
BENCHMARK(BM_DecideNoLog)->MeasureProcessCPUTime();
BENCHMARK(BM_DecisionRecord)->Arg(0)->Arg(1)->MeasureProcessCPUTime();

BENCHMARK_MAIN();
