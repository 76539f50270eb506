#include "audit/audit_query.h"

#include <cctype>
#include <charconv>
#include <ctime>
#include <fstream>

namespace kz {

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

std::string text_of(const nlohmann::json& j, const char* k) {
  if (!j.contains(k)) return "";
  const auto& v = j[k];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  return "";
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string lineage_text(const nlohmann::json& l) {
  if (l.is_string()) return l.get<std::string>();
  if (!l.is_array()) return "";
  std::string out;
  for (const auto& e : l) {
    std::string name;
    if (e.is_string()) name = e.get<std::string>();
    else if (e.is_object()) name = text_of(e, "exe").empty() ? text_of(e, "comm") : text_of(e, "exe");
    else if (e.is_number()) name = e.dump();
    if (!out.empty()) out += " \xE2\x86\x92 ";   // " → "
    out += name;
  }
  return out;
}

}  // namespace

std::optional<AuditTime> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff…](Z|±hh:mm); 't'/'z' and a space for 'T' are accepted.
  int Y = 0, M = 0, D = 0, h = 0, m = 0, sec = 0;
  if (!digits(s, 0, 4, Y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' ||
      !digits(s, 8, 2, D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, m) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
  std::size_t p = 19;
  std::chrono::nanoseconds frac{0};
  if (p < s.size() && s[p] == '.') {
    ++p;
    long long ns = 0;
    int n = 0;
    while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) {
      if (n < 9) { ns = ns * 10 + (s[p] - '0'); ++n; }
      ++p;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) ns *= 10;
    frac = std::chrono::nanoseconds(ns);
  }
  long offset_s = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int oh = 0, om = 0;
    if (!digits(s, p + 1, 2, oh) || p + 3 >= s.size() || s[p + 3] != ':' || !digits(s, p + 4, 2, om) || oh > 23 ||
        om > 59)
      return std::nullopt;
    offset_s = (s[p] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    p += 6;
  } else {
    return std::nullopt;   // a time without a zone is ambiguous
  }
  if (p != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  if (tm.tm_mday != D) return std::nullopt;   // timegm normalised e.g. Feb 31
  // system_clock counts nanoseconds in 64 bits (about 1678 to 2262): times beyond that
  // are clamped rather than wrapped, so "--since 2999-01-01T00:00:00Z" matches nothing.
  using Clk = std::chrono::system_clock;
  const long long limit =
      std::chrono::duration_cast<std::chrono::seconds>(Clk::duration::max()).count() - 1;
  const long long secs = static_cast<long long>(t) - offset_s;
  if (secs >= limit) return Clk::time_point::max();
  if (secs <= -limit) return Clk::time_point::min();
  return std::chrono::system_clock::from_time_t(t - offset_s) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(frac);
}

Result<AuditTime> parse_audit_time(std::string_view text, AuditTime now) {
  if (auto t = parse_rfc3339(text)) return *t;
  // Relative: a positive number and one unit, meaning "that long ago".
  if (text.size() >= 2) {
    long long n = 0;
    const char* b = text.data();
    const char* e = text.data() + text.size() - 1;
    auto [ptr, ec] = std::from_chars(b, e, n);
    if (ec == std::errc() && ptr == e && n >= 0 && n <= 100LL * 365 * 24 * 3600) {
      long long secs = -1;
      switch (text.back()) {
        case 's': secs = n; break;
        case 'm': secs = n * 60; break;
        case 'h': secs = n * 3600; break;
        case 'd': secs = n * 86400; break;
        case 'w': secs = n * 7 * 86400; break;
        default: break;
      }
      if (secs >= 0) return now - std::chrono::seconds(secs);
    }
  }
  return make_error(ErrorKind::Usage, "\"" + std::string(text) +
                                          "\" is not a time: use RFC 3339 (2026-11-26T03:00:00Z) or a relative "
                                          "time such as 30s, 15m, 2h, 1d, 1w");
}

bool audit_record_matches(const nlohmann::json& j, const AuditQuery& q) {
  if (!j.is_object()) return false;
  auto eq = [&](const std::optional<std::string>& want, const char* key) {
    return !want || (j.contains(key) && j[key].is_string() && j[key].get<std::string>() == *want);
  };
  if (!eq(q.secret, "secret") || !eq(q.event, "event") || !eq(q.decision, "decision") || !eq(q.run, "run"))
    return false;
  if (q.host && !(j.contains("host") && j["host"].is_string() && iequal(j["host"].get<std::string>(), *q.host)))
    return false;
  if (q.pid && !(j.contains("pid") && j["pid"].is_number_integer() && j["pid"].get<long>() == *q.pid)) return false;
  if (q.since || q.until) {
    const auto ts = j.contains("ts") && j["ts"].is_string() ? parse_rfc3339(j["ts"].get<std::string>()) : std::nullopt;
    if (!ts) return false;   // a record without a readable time cannot be placed in a window
    if (q.since && *ts < *q.since) return false;
    if (q.until && *ts > *q.until) return false;
  }
  return true;
}

std::string format_audit_record(const nlohmann::json& j) {
  std::string out = text_of(j, "ts");
  out += " " + (text_of(j, "event").empty() ? std::string("-") : text_of(j, "event"));
  if (!text_of(j, "decision").empty()) out += " " + text_of(j, "decision");
  for (const char* k : {"secret", "host", "exe", "pid"})
    if (!text_of(j, k).empty()) out += std::string(" ") + k + "=" + text_of(j, k);
  if (j.contains("lineage")) {
    const std::string l = lineage_text(j["lineage"]);
    if (!l.empty()) out += " lineage=" + l;
  }
  if (!text_of(j, "reason").empty()) out += ": " + text_of(j, "reason");
  return out;
}

Result<std::size_t> query_audit_file(const std::string& path, const AuditQuery& q,
                                     const std::function<void(const std::string&, const nlohmann::json&)>& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrorKind::Io, "cannot read " + path);
  std::string line;
  std::size_t n = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !audit_record_matches(j, q)) continue;
    ++n;
    out(line, j);
  }
  return n;
}

}  // namespace kz
