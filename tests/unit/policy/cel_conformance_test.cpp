// CEL conformance: every case of ../shared/vectors/cel/conformance.jsonl (derived from
// the cel-spec simple tests; FORMAT.md there describes the encoding). Prints each failing
// case as file/section/name with expected vs got, the pass rate, and fails below 95%.
// KZ_CEL_VECTORS=path1:path2 runs other files of the same format instead.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "policy/cel.h"
#include "test_support.h"

namespace kz::cel {
namespace {

std::string b64decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const auto p = chars.find(c);
    if (p == std::string::npos) continue;
    acc = (acc << 6) | static_cast<std::uint32_t>(p);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

Value typed(const nlohmann::json& j) {
  if (j.contains("int64")) return Value(j["int64"].get<std::int64_t>());
  if (j.contains("uint64")) return Value(j["uint64"].get<std::uint64_t>());
  if (j.contains("double")) {
    const auto& d = j["double"];
    if (d.is_string()) {
      const std::string s = d.get<std::string>();
      if (s == "NaN") return Value(std::nan(""));
      return Value(s == "Infinity" ? HUGE_VAL : -HUGE_VAL);
    }
    return Value(d.get<double>());
  }
  if (j.contains("string")) return Value(j["string"].get<std::string>());
  if (j.contains("bool")) return Value(j["bool"].get<bool>());
  if (j.contains("null")) return Value(Null{});
  if (j.contains("bytes_b64")) return Value(Bytes{b64decode(j["bytes_b64"].get<std::string>())});
  if (j.contains("list")) {
    List l;
    for (const auto& e : j["list"]) l.push_back(typed(e));
    return Value(std::move(l));
  }
  if (j.contains("map")) {
    std::vector<std::pair<Value, Value>> entries;
    for (const auto& kv : j["map"]) entries.emplace_back(typed(kv[0]), typed(kv[1]));
    return Value::make_map(std::move(entries));
  }
  return Value::error("unknown typed value in the vectors: " + j.dump());
}

// Result matching per FORMAT.md: same types (1 is not 1u), maps without order, NaN
// matches NaN.
bool same(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Double:
      if (std::isnan(a.as_double())) return std::isnan(b.as_double());
      return a.as_double() == b.as_double();
    case Kind::List: {
      const List &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!same(x[i], y[i])) return false;
      return true;
    }
    case Kind::Map: {
      const Map &x = a.as_map(), &y = b.as_map();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        bool found = false;
        for (const auto& [k2, v2] : y.entries)
          if (same(k, k2)) { found = same(v, v2); break; }
        if (!found) return false;
      }
      return true;
    }
    case Kind::Error: return true;
    default: return equals(a, b);
  }
}

std::vector<std::string> vector_files() {
  std::vector<std::string> files;
  if (const char* env = std::getenv("KZ_CEL_VECTORS"); env != nullptr && *env != '\0') {
    std::stringstream ss(env);
    std::string f;
    while (std::getline(ss, f, ':'))
      if (!f.empty()) files.push_back(f);
    return files;
  }
  files.push_back(kz::test::source_dir() + "/../shared/vectors/cel/conformance.jsonl");
  return files;
}

TEST(CelConformance, SharedVectors) {
  std::size_t total = 0, passed = 0;
  for (const auto& path : vector_files()) {
    std::ifstream in(path);
    ASSERT_TRUE(in) << "cannot open " << path;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto c = nlohmann::json::parse(line);
      ++total;
      const std::string id = c["file"].get<std::string>() + "/" + c["section"].get<std::string>() + "/" +
                             c["name"].get<std::string>();
      Activation vars;
      if (c.contains("bindings"))
        for (const auto& [name, v] : c["bindings"].items()) vars.bind(name, typed(v));
      Value got;
      Limits lim;
      // The reference harness skips its checker for these; unknown functions must then
      // be runtime errors (e.g. `f_unknown(17) || true` is true).
      lim.check = !c.value("disable_check", false);
      auto prog = Program::compile(c["expr"].get<std::string>(), lim);
      if (prog) got = prog->evaluate(vars);
      else got = Value::error("compile: " + prog.error().message);

      const auto& expect = c["expect"];
      bool ok;
      std::string want;
      if (expect.contains("error")) {
        ok = got.is_error();
        want = "an error (" + expect.value("message", std::string()) + ")";
      } else {
        const Value w = typed(expect["value"]);
        ok = !got.is_error() && same(w, got);
        want = debug_string(w);
      }
      if (ok) {
        ++passed;
      } else {
        std::cout << "FAIL " << id << "\n  expr:     " << c["expr"].get<std::string>() << "\n  expected: " << want
                  << "\n  got:      " << debug_string(got) << "\n";
      }
    }
  }
  ASSERT_GT(total, 0u);
  const double pct = 100.0 * static_cast<double>(passed) / static_cast<double>(total);
  std::cout << "CEL conformance: " << passed << "/" << total << " passed (" << pct << "%)\n";
  EXPECT_GE(pct, 95.0);
}

}  // namespace
}  // namespace kz::cel
