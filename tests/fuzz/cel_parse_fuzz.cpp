// Fuzz target for the CEL front end and evaluator: any input must either fail to compile
// with a diagnostic inside the input, or evaluate to a value or an error value within
// the step budget, without crashing, leaking or tripping ASan/UBSan.
// Built by scripts/fuzz-cel (libFuzzer); replayed over tests/fuzz/corpus/cel by
// tests/unit/policy/cel_fuzz_corpus_test.cpp in the normal and sanitizer builds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/cel.h"

namespace {

const kz::cel::Activation& fuzz_vars() {
  static const kz::cel::Activation vars = [] {
    kz::cel::Activation a;
    std::vector<std::pair<kz::cel::Value, kz::cel::Value>> id;
    id.emplace_back(kz::cel::Value("service"), kz::cel::Value("data-pipeline-agent"));
    id.emplace_back(kz::cel::Value("env"), kz::cel::Value("staging"));
    id.emplace_back(kz::cel::Value("groups"), kz::cel::Value(kz::cel::List{kz::cel::Value("a"), kz::cel::Value("b")}));
    id.emplace_back(kz::cel::Value("n"), kz::cel::Value(7));
    a.bind("identity", kz::cel::Value::make_map(std::move(id)));
    a.bind("x", kz::cel::Value(3));
    a.bind("s", kz::cel::Value("secret/data/prod/db"));
    a.bind("a.b", kz::cel::Value(true));
    return a;
  }();
  return vars;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view src(reinterpret_cast<const char*>(data), size);
  kz::cel::Limits lim;
  lim.max_steps = 20000;
  kz::cel::Diagnostic where;
  auto prog = kz::cel::Program::compile(src, lim, &where);
  if (!prog) {
    // The diagnostic must point into the expression (or just past its end).
    if (where.offset > size && where.offset != lim.max_source_bytes) std::abort();
    return 0;
  }
  const kz::cel::Value v = prog->evaluate(fuzz_vars());
  (void)kz::cel::debug_string(v);
  return 0;
}
