#include "policy/ref_glob.h"

#include <vector>

namespace kz::policy {

namespace {

std::vector<std::string_view> segments(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

// One segment against a pattern with '*' (any run of characters).
bool segment_matches(std::string_view p, std::string_view s) {
  std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < p.size() && p[pi] == s[si]) {
      ++pi;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace

bool ref_glob_matches(std::string_view pattern, std::string_view ref) {
  const auto p = segments(pattern);
  const auto r = segments(ref);
  // Backtracking over "**" like '*' over characters: at most one open "**" at a time.
  std::size_t pi = 0, ri = 0, star = SIZE_MAX, mark = 0;
  while (ri < r.size()) {
    if (pi < p.size() && p[pi] == "**") {
      star = pi++;
      mark = ri;
    } else if (pi < p.size() && segment_matches(p[pi], r[ri])) {
      ++pi;
      ++ri;
    } else if (star != SIZE_MAX) {
      pi = star + 1;
      ri = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == "**") ++pi;
  return pi == p.size();
}

std::string ref_glob_problem(std::string_view pattern) {
  if (pattern.empty()) return "an empty pattern matches nothing";
  for (auto seg : segments(pattern))
    if (seg != "**" && seg.find("**") != std::string_view::npos)
      return "\"**\" must be a whole path segment (\"a/**/b\"), not part of one";
  return "";
}

}  // namespace kz::policy
