// CEL semantics, one rule at a time: overflow, no implicit numeric conversion,
// heterogeneous equality, error absorption in && and ||, `in`, has(), the macros,
// matches() with RE2 syntax, conversions, type values, limits and parse error offsets.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "policy/cel.h"

namespace kz::cel {
namespace {

Value eval(std::string_view expr, const Activation& vars = {}, const Limits& lim = {}) {
  auto p = Program::compile(expr, lim);
  if (!p) return Value::error("compile: " + p.error().message);
  return p->evaluate(vars);
}

// True when expr evaluates to the bool true (the common shape of these tests).
::testing::AssertionResult holds(std::string_view expr, const Activation& vars = {}) {
  const Value v = eval(expr, vars);
  if (v.is_bool() && v.as_bool()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " gave " << debug_string(v);
}

::testing::AssertionResult fails(std::string_view expr, const Activation& vars = {}) {
  const Value v = eval(expr, vars);
  if (v.is_error()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " gave " << debug_string(v) << ", expected an error";
}

std::size_t compile_error_offset(std::string_view expr, const Limits& lim = {}) {
  Diagnostic d;
  auto p = Program::compile(expr, lim, &d);
  EXPECT_FALSE(p.ok()) << expr;
  if (!p.ok()) {
    EXPECT_NE(p.error().message.find("offset " + std::to_string(d.offset)), std::string::npos);
  }
  return d.offset;
}

TEST(Cel, IntegerOverflowIsAnError) {
  EXPECT_TRUE(fails("9223372036854775807 + 1"));
  EXPECT_TRUE(fails("-9223372036854775808 - 1"));
  EXPECT_TRUE(fails("9223372036854775807 * 2"));
  EXPECT_TRUE(fails("-(-9223372036854775808)"));
  EXPECT_TRUE(fails("-9223372036854775808 / -1"));
  EXPECT_TRUE(fails("-9223372036854775808 % -1"));
  EXPECT_TRUE(fails("18446744073709551615u + 1u"));
  EXPECT_TRUE(fails("0u - 1u"));
  EXPECT_TRUE(fails("9223372036854775808"));  // literal out of range
  EXPECT_TRUE(holds("-9223372036854775808 < 0"));
  EXPECT_TRUE(holds("18446744073709551615u == 18446744073709551615u"));
}

TEST(Cel, DivisionByZeroIsAnError) {
  EXPECT_TRUE(fails("1 / 0"));
  EXPECT_TRUE(fails("1 % 0"));
  EXPECT_TRUE(fails("1u / 0u"));
  EXPECT_TRUE(fails("1u % 0u"));
  EXPECT_TRUE(holds("1.0 / 0.0 > 1e308"));  // IEEE for doubles
  EXPECT_TRUE(holds("-7 / 2 == -3 && -7 % 2 == -1"));  // truncation toward zero
}

TEST(Cel, NoImplicitNumericConversionInArithmetic) {
  EXPECT_TRUE(fails("1 + 1u"));
  EXPECT_TRUE(fails("1 + 1.0"));
  EXPECT_TRUE(fails("1u * 2.0"));
  EXPECT_TRUE(fails("-(1u)"));
  EXPECT_TRUE(fails("'a' + 1"));
  EXPECT_TRUE(fails("5.0 % 2.0"));
  EXPECT_TRUE(holds("int(1u) + 1 == 2"));
}

TEST(Cel, HeterogeneousNumericEqualityAndOrdering) {
  EXPECT_TRUE(holds("1 == 1u && 1u == 1.0 && 1.0 == 1"));
  EXPECT_TRUE(holds("1 < 1.5 && 2u > 1.5 && -1 < 0u"));
  EXPECT_TRUE(holds("9223372036854775807 != 9223372036854775808.0"));  // no rounding through double
  EXPECT_TRUE(holds("18446744073709551615u > 9223372036854775807"));
  EXPECT_TRUE(holds("[1, 2u, 3.0] == [1u, 2.0, 3]"));
  EXPECT_TRUE(holds("{1: 'a'} == {1u: 'a'}"));
  EXPECT_TRUE(holds("0.0/0.0 != 0.0/0.0"));
  EXPECT_TRUE(holds("!(0.0/0.0 < 1.0) && !(0.0/0.0 >= 1.0)"));
  // Different non-numeric types are unequal, not an error; ordering them is an error.
  EXPECT_TRUE(holds("1 != 'a' && null != false && [1] != {1: 1}"));
  EXPECT_TRUE(fails("1 < 'a'"));
  EXPECT_TRUE(fails("[1] < [2]"));
  EXPECT_TRUE(fails("null < null"));
}

TEST(Cel, AndOrAbsorbErrorsCommutatively) {
  EXPECT_TRUE(holds("!(false && 1/0 == 1)"));
  EXPECT_TRUE(holds("!(1/0 == 1 && false)"));
  EXPECT_TRUE(holds("true || 1/0 == 1"));
  EXPECT_TRUE(holds("1/0 == 1 || true"));
  EXPECT_TRUE(holds("x || true"));  // unbound variable: an error, absorbed
  EXPECT_TRUE(holds("!('horses' && false)"));
  EXPECT_TRUE(holds("'horses' || true"));
  EXPECT_TRUE(fails("true && 1/0 == 1"));
  EXPECT_TRUE(fails("1/0 == 1 || false"));
  EXPECT_TRUE(fails("'horses' && true"));
  EXPECT_TRUE(fails("!'a'"));
  EXPECT_TRUE(holds("true ? true : 1/0 == 1"));
  EXPECT_TRUE(fails("1 ? true : false"));
}

TEST(Cel, InForListsAndMaps) {
  EXPECT_TRUE(holds("2 in [1, 2, 3]"));
  EXPECT_TRUE(holds("2u in [1, 2, 3] && 2.0 in [2]"));
  EXPECT_TRUE(holds("!('a' in [1, 2])"));
  EXPECT_TRUE(holds("'k' in {'k': 1} && !('v' in {'k': 'v'})"));
  EXPECT_TRUE(holds("3.0 in {3u: 1} && !(3.5 in {3: 1})"));
  EXPECT_TRUE(fails("1 in 1"));
  EXPECT_TRUE(fails("'a' in 'abc'"));
}

TEST(Cel, FieldSelectionIndexingAndHas) {
  Activation vars;
  vars.bind("identity", from_json(nlohmann::json::parse(R"({"service":"svc","groups":["a","b"],"n":3})")));
  EXPECT_TRUE(holds("identity.service == 'svc'", vars));
  EXPECT_TRUE(holds("identity['groups'][1] == 'b'", vars));
  EXPECT_TRUE(holds("has(identity.service) && !has(identity.env)", vars));
  EXPECT_TRUE(fails("identity.env", vars));
  EXPECT_TRUE(fails("identity.groups[2]", vars));
  EXPECT_TRUE(fails("identity.groups[-1]", vars));
  EXPECT_TRUE(fails("identity.n.x", vars));
  EXPECT_TRUE(fails("has(identity.n.x)", vars));
  EXPECT_TRUE(holds("{'a': {'b': 1}}.a.b == 1"));
  EXPECT_TRUE(holds("{'a-b': 1}.`a-b` == 1"));
  EXPECT_TRUE(holds("{1: 'x'}[1u] == 'x' && {1u: 'x'}[1.0] == 'x'"));
  EXPECT_TRUE(fails("{1: 'x'}[1.5]"));
  EXPECT_TRUE(fails("{'a': 1, 'a': 2}"));
  EXPECT_TRUE(fails("{1: 1, 1u: 2}"));  // numerically equal keys repeat
  EXPECT_TRUE(fails("{[1]: 1}"));
  EXPECT_FALSE(Program::compile("has(identity)").ok());
}

TEST(Cel, DottedVariableNamesResolveBeforeSelection) {
  Activation vars;
  vars.bind("a.b", Value(7));
  vars.bind("a", from_json(nlohmann::json::parse(R"({"b": 1, "c": 2})")));
  EXPECT_TRUE(holds("a.b == 7 && a.c == 2", vars));
}

TEST(Cel, Macros) {
  EXPECT_TRUE(holds("[1, 2, 3].all(x, x > 0)"));
  EXPECT_TRUE(holds("![1, 2, 3].all(x, x > 1)"));
  EXPECT_TRUE(holds("[1, 2, 3].exists(x, x == 2)"));
  EXPECT_TRUE(holds("[1, 2, 3].exists_one(x, x > 2)"));
  EXPECT_TRUE(holds("![1, 2, 3].exists_one(x, x > 1)"));
  EXPECT_TRUE(holds("[1, 2, 3].map(x, x * 2) == [2, 4, 6]"));
  EXPECT_TRUE(holds("[1, 2, 3].map(x, x > 1, x * 2) == [4, 6]"));
  EXPECT_TRUE(holds("[1, 2, 3].filter(x, x != 2) == [1, 3]"));
  EXPECT_TRUE(holds("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])"));
  EXPECT_TRUE(holds("{'a': 1, 'b': 2}.map(k, k + k) == ['aa', 'bb']"));
  EXPECT_TRUE(holds("[[1], [2, 3]].all(l, l.exists(x, x > 0))"));
  // Errors: absorbed by a decisive element in all/exists, propagated otherwise.
  EXPECT_TRUE(holds("![0, 1].all(x, 1 / x > 1)"));
  EXPECT_TRUE(holds("[0, 1].exists(x, 1 / x == 1)"));
  EXPECT_TRUE(fails("[0, 2].all(x, 1 / x < 1)"));
  EXPECT_TRUE(fails("[0, 1].exists_one(x, 1 / x == 1)"));
  EXPECT_TRUE(fails("[0, 1].map(x, 1 / x)"));
  EXPECT_TRUE(fails("[0, 1].filter(x, 1 / x == 1)"));
  EXPECT_TRUE(fails("[1].all(x, x)"));
  EXPECT_TRUE(fails("1.all(x, true)"));
  EXPECT_FALSE(Program::compile("[1].all(x.y, true)").ok());
  EXPECT_FALSE(Program::compile("[1].all(x)").ok());
}

TEST(Cel, StringFunctions) {
  EXPECT_TRUE(holds("size('héllo') == 5 && 'héllo'.size() == 5"));  // code points
  EXPECT_TRUE(holds("size('😀') == 1 && size(b'\\xff\\x00') == 2"));
  EXPECT_TRUE(holds("size([1, 2]) == 2 && size({'a': 1}) == 1"));
  EXPECT_TRUE(holds("'data-pipeline'.startsWith('data') && 'x.y'.endsWith('.y') && 'abc'.contains('b')"));
  EXPECT_TRUE(holds("'' .contains('') && !'a'.startsWith('ab')"));
  EXPECT_TRUE(fails("'a'.contains(1)"));
  EXPECT_TRUE(fails("size(1)"));
  EXPECT_TRUE(holds("'he' + 'llo' == 'hello' && b'a' + b'b' == b'ab' && [1] + [2] == [1, 2]"));
}

TEST(Cel, MatchesUsesRe2Syntax) {
  EXPECT_TRUE(holds("'foobar'.matches('o+b')"));              // unanchored, like RE2 PartialMatch
  EXPECT_TRUE(holds("!'foobar'.matches('^o+b')"));
  EXPECT_TRUE(holds("matches('agent-42', '^agent-[0-9]+$')"));
  EXPECT_TRUE(holds("'ΑΒΓ'.matches('^\\\\p{Greek}+$')"));      // RE2 Unicode classes
  EXPECT_TRUE(holds("'a'.matches('(?i)A')"));
  EXPECT_FALSE(Program::compile("'a'.matches('(a')").ok());    // bad literal pattern: compile error
  EXPECT_FALSE(Program::compile("'aa'.matches('(a)\\\\1')").ok()); // backreferences are not RE2
  Activation vars;
  vars.bind("re", Value("(a"));
  EXPECT_TRUE(fails("'a'.matches(re)", vars));                 // bad dynamic pattern: error value
}

TEST(Cel, Conversions) {
  EXPECT_TRUE(holds("int('42') == 42 && int(2.9) == 2 && int(-2.9) == -2 && int(7u) == 7"));
  EXPECT_TRUE(fails("int(18446744073709551615u)"));
  EXPECT_TRUE(fails("int(9223372036854775807.0)"));
  EXPECT_TRUE(fails("int('x')"));
  EXPECT_TRUE(holds("uint(42) == 42u && uint('7') == 7u && uint(1.5) == 1u"));
  EXPECT_TRUE(fails("uint(-1)"));
  EXPECT_TRUE(holds("double(1) == 1.0 && double('2.5') == 2.5 && double(3u) == 3.0"));
  EXPECT_TRUE(holds("string(1) == '1' && string(2u) == '2' && string(true) == 'true' && string(b'ab') == 'ab'"));
  EXPECT_TRUE(holds("string(1.5) == '1.5' && string(-4.5e-3) == '-0.0045'"));
  EXPECT_TRUE(fails("string(b'\\xff')"));
  EXPECT_TRUE(holds("bytes('ab') == b'ab' && bool('true') && !bool('false')"));
  EXPECT_TRUE(fails("bool('yes')"));
  EXPECT_TRUE(holds("dyn(1) == 1u && dyn([1]) + [2] == [1, 2]"));
}

TEST(Cel, TypeValues) {
  EXPECT_TRUE(holds("type(1) == int && type(1u) == uint && type(1.0) == double"));
  EXPECT_TRUE(holds("type('') == string && type(b'') == bytes && type(true) == bool"));
  EXPECT_TRUE(holds("type(null) == null_type && type([]) == list && type({}) == map"));
  EXPECT_TRUE(holds("type(int) == type && type(type(1)) == type"));
  EXPECT_TRUE(holds("type(1) != uint"));
  Activation vars;
  vars.bind("int", Value("shadowed"));
  EXPECT_TRUE(holds("int == 'shadowed'", vars));
}

TEST(Cel, Literals) {
  EXPECT_TRUE(holds("'\\x41\\u00e9\\U0001F600\\101' == 'Aé😀A'"));
  EXPECT_TRUE(holds("b'\\xff\\377' == bytes('') + b'\\377\\xFF'"));
  EXPECT_TRUE(holds("r'\\n' == '\\\\n' && R\"\\d\" == '\\\\d'"));
  EXPECT_TRUE(holds("'''a\nb''' == \"a\\nb\" && \"\"\"x\"y\"\"\" == 'x\"y'"));
  EXPECT_TRUE(holds("0x10 == 16 && 0xFFu == 255u && 1e3 == 1000.0 && .5 == 0.5"));
  EXPECT_TRUE(holds("// a comment\n1 == 1"));
  EXPECT_FALSE(Program::compile("'\\ud800'").ok());  // surrogate
  EXPECT_FALSE(Program::compile("'abc").ok());
  EXPECT_FALSE(Program::compile("'a\nb'").ok());     // newline in a one-line string
  EXPECT_FALSE(Program::compile("\"\\q\"").ok());
}

TEST(Cel, ParseErrorsReportTheByteOffset) {
  EXPECT_EQ(compile_error_offset("identity.service == "), 20u);
  EXPECT_EQ(compile_error_offset("a = b"), 2u);
  EXPECT_EQ(compile_error_offset("a.b(1, )"), 7u);
  EXPECT_EQ(compile_error_offset("'unterminated"), 0u);
  EXPECT_EQ(compile_error_offset("x + 'ok' + '\\z'"), 12u);
  EXPECT_EQ(compile_error_offset("foo(1)"), 0u);     // unknown function
  EXPECT_EQ(compile_error_offset("1 + size(1, 2)"), 4u);
  EXPECT_EQ(compile_error_offset("if"), 0u);         // reserved word
  EXPECT_EQ(compile_error_offset("1 + \xff"), 4u);   // invalid UTF-8
  EXPECT_EQ(compile_error_offset("a.b{c: 1}"), 3u);  // messages are not supported
}

TEST(Cel, UnknownFunctionsAreCompileErrorsUnlessChecksAreDeferred) {
  EXPECT_FALSE(Program::compile("f_unknown(17) || true").ok());
  Limits lim;
  lim.check = false;
  EXPECT_TRUE(eval("f_unknown(17) || true", {}, lim).as_bool());
  EXPECT_TRUE(eval("f_unknown(17)", {}, lim).is_error());
  EXPECT_TRUE(eval("size(1, 2) || true", {}, lim).as_bool());
}

TEST(Cel, LiteralTypeErrorsAreCompileErrors) {
  EXPECT_EQ(compile_error_offset("x == 1 || 1 + 'a' == 2"), 12u);
  EXPECT_EQ(compile_error_offset("size(1)"), 0u);
  EXPECT_EQ(compile_error_offset("-'a'"), 0u);
  EXPECT_TRUE(Program::compile("1 / 0 == 1 || true").ok());  // a run-time error, absorbed
  Limits lim;
  lim.check = false;
  EXPECT_TRUE(eval("false && 1 + 'a' == 2", {}, lim).is_bool());
}

TEST(Cel, ParseTimeLimits) {
  Limits lim;
  lim.max_source_bytes = 10;
  EXPECT_EQ(compile_error_offset("1 + 2 + 3 + 4", lim), 10u);
  lim = Limits{};
  lim.max_depth = 10;
  EXPECT_TRUE(Program::compile("((((((((1))))))))", lim).ok());
  compile_error_offset("((((((((((((1))))))))))))", lim);
  compile_error_offset("1+1+1+1+1+1+1+1+1+1+1+1+1", lim);  // deep tree without deep recursion
  compile_error_offset("------------1", lim);
  // Long && chains are balanced, so they fit the depth limit.
  std::string chain = "true";
  for (int i = 0; i < 200; ++i) chain += " && true";
  EXPECT_TRUE(Program::compile(chain, lim).ok());
  lim = Limits{};
  lim.max_nodes = 5;
  compile_error_offset("[1, 2, 3, 4, 5, 6]", lim);
}

TEST(Cel, StepBudgetPerEvaluation) {
  Limits lim;
  lim.max_steps = 1000;
  const std::string big = "[0,1,2,3,4,5,6,7,8,9]";
  const std::string expr = big + ".all(a, " + big + ".all(b, " + big + ".all(c, a + b + c >= 0)))";
  const Value v = eval(expr, {}, lim);
  ASSERT_TRUE(v.is_error());
  EXPECT_NE(v.error_message().find("cost"), std::string::npos);
  // The budget error is not absorbed by || even though other errors would be.
  EXPECT_TRUE(eval(expr + " || true", {}, lim).is_error());
  lim.max_steps = 100000;
  EXPECT_TRUE(eval(expr, {}, lim).is_bool());
  // Value growth is charged: doubling a string in nested comprehensions runs out.
  lim.max_steps = 5000;
  std::string grow = "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'";
  std::string e2 = "[" + grow + "]";
  for (int i = 0; i < 20; ++i) e2 = e2 + ".map(s" + std::to_string(i) + ", s" + std::to_string(i) + " + s" + std::to_string(i) + ")";
  EXPECT_TRUE(eval(e2, {}, lim).is_error());
}

TEST(Cel, FromJson) {
  const Value v = from_json(nlohmann::json::parse(R"({"a":[1,2.5,"s",true,null],"u":18446744073709551615})"));
  Activation vars;
  vars.bind("j", v);
  EXPECT_TRUE(holds("j.a[0] == 1 && type(j.a[0]) == int && j.a[1] == 2.5 && j.a[4] == null", vars));
  EXPECT_TRUE(holds("type(j.u) == uint", vars));
}

TEST(Cel, ProgramIsReusableAndErrorsAreValues) {
  auto p = Program::compile("identity.env == 'staging'");
  ASSERT_TRUE(p.ok());
  Activation a, b;
  a.bind("identity", from_json(nlohmann::json{{"env", "staging"}}));
  b.bind("identity", from_json(nlohmann::json{{"team", "x"}}));
  EXPECT_TRUE(p->evaluate(a).as_bool());
  EXPECT_TRUE(p->evaluate(b).is_error());
  EXPECT_TRUE(p->evaluate(Activation{}).is_error());
}

TEST(Cel, ProgramsAreCopyableAndEvaluateConcurrently) {
  auto p = Program::compile("identity.groups.exists(g, g.matches('^team-')) && identity.n + 1 == 4");
  ASSERT_TRUE(p.ok());
  const Program copy = *p;
  Activation vars;
  vars.bind("identity", from_json(nlohmann::json::parse(R"({"groups":["eng","team-data"],"n":3})")));
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        const Value v = copy.evaluate(vars);
        if (v.is_bool() && v.as_bool()) ++good;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 2000);
}

}  // namespace
}  // namespace kz::cel
