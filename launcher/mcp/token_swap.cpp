#include "mcp/token_swap.h"

#include <algorithm>
#include <cctype>

#include "kz/preload/basic_auth.h"
#include "masking/encodings.h"

namespace kz::mcp {

namespace {

constexpr std::string_view kTokenPrefix = "KZ_TOK_";

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Swapper {
  const HopInfo& hop;
  const TokenTable& tokens;
  std::int64_t now;
  const TokenCheck& check;
  std::vector<std::shared_ptr<const TokenEntry>>& used;

  // `in` with each token replaced by its value, appended to `out`.
  Status swap_into(std::string_view in, std::string& out) {
    std::size_t at = 0;
    for (const auto& [pos, len] : find_token_texts(in)) {
      out.append(in.substr(at, pos - at));
      const std::string_view text = in.substr(pos, len);
      auto t = tokens.find(text, now);
      if (!t)
        return make_error(ErrorKind::Denied, "unknown or expired token " + std::string(text.substr(0, 10)) +
                                                 "… (resolve the secret again)");
      if (auto st = check(*t, hop); !st) return st;
      if (std::none_of(used.begin(), used.end(), [&](const auto& u) { return u.get() == t.get(); })) used.push_back(t);
      out.append(t->value.view());
      at = pos + len;
    }
    out.append(in.substr(at));
    return ok_status();
  }

  // "Basic <base64>": swap inside the decoded credential.
  Status swap_basic(std::string_view value, std::string& out) {
    const std::size_t b = value.find_first_not_of(' ', 6);
    const std::string_view b64 = b == std::string_view::npos ? std::string_view() : value.substr(b);
    ScrubbedString decoded;
    decoded.str().resize(b64.size());
    const long n = preload::b64_decode(b64.data(), b64.size(), reinterpret_cast<unsigned char*>(decoded.str().data()),
                                       decoded.str().size());
    if (n < 0) return swap_into(value, out);   // not base64: scanned as plain text
    decoded.str().resize(static_cast<std::size_t>(n));
    if (find_token_texts(decoded.str()).empty()) return swap_into(value, out);
    ScrubbedString swapped;
    if (auto st = swap_into(decoded.str(), swapped.str()); !st) return st;
    ScrubbedString encoded(base64_encode(swapped.str(), false, true));
    out.append(value.substr(0, 6));
    out.append(encoded.str());
    return ok_status();
  }
};


}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> find_token_texts(std::string_view text) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t pos = 0;
  while ((pos = text.find(kTokenPrefix, pos)) != std::string_view::npos) {
    std::size_t end = pos + kTokenPrefix.size();
    while (end < text.size() && is_token_char(text[end])) ++end;
    if (end > pos + kTokenPrefix.size()) out.emplace_back(pos, end - pos);
    pos = end;
  }
  return out;
}

std::string header_problem(const std::string& name, const std::string& value) {
  if (!is_http_token(name))
    return "header name \"" + name + "\" is not a valid HTTP field name";
  if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos)
    return "header " + name + ": values cannot contain CR, LF or NUL";
  const std::string n = lower(name);
  static const char* const kOwned[] = {"host", "content-length", "transfer-encoding", "connection", "expect",
                                       "upgrade", "te", "trailer", "keep-alive"};
  for (const char* o : kOwned)
    if (n == o) return "header " + name + " is set by kz, not by the caller";
  if (n.rfind("proxy-", 0) == 0) return "header " + name + " is not allowed (kz talks to the host directly)";
  return "";
}

Result<PreparedHop> swap_tokens(const FetchRequest& req, const HopInfo& hop, const TokenTable& tokens,
                                std::int64_t now, const TokenCheck& check,
                                std::vector<std::shared_ptr<const TokenEntry>>& used) {
  Swapper sw{hop, tokens, now, check, used};
  PreparedHop out;
  for (const auto& [k, v] : req.headers) {
    ScrubbedString value;
    const bool basic = v.size() > 6 && lower(v.substr(0, 6)) == "basic ";
    const std::string n = lower(k);
    auto st = basic && (n == "authorization") ? sw.swap_basic(v, value.str()) : sw.swap_into(v, value.str());
    if (!st) return st.take_error();
    out.headers.emplace_back(k, std::move(value));
  }
  if (auto st = sw.swap_into(req.body, out.body.str()); !st) return st.take_error();
  return out;
}

}  // namespace kz::mcp
