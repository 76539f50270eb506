#include <cctype>
#include <cstdlib>

#include "kz/providers/provider.h"

namespace kz {

const char* to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::Config: return "configuration error";
    case ErrorKind::Usage: return "usage error";
    case ErrorKind::NotFound: return "not found";
    case ErrorKind::Denied: return "permission denied";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::Tls: return "TLS error";
    case ErrorKind::Network: return "network error";
    case ErrorKind::Protocol: return "protocol error";
    case ErrorKind::Io: return "I/O error";
    case ErrorKind::Internal: return "internal error";
  }
  return "error";
}

std::string format_pos(const SourcePos& p) {
  std::string s = p.file;
  if (p.line > 0) {
    s += ":" + std::to_string(p.line);
    if (p.column > 0) s += ":" + std::to_string(p.column);
  }
  return s;
}

const char* ProcessEnvironment::get(const std::string& name) const {
  return std::getenv(name.c_str());
}

std::string expand_home(const std::string& path, const std::string& home) {
  if (path == "~") return home;
  if (path.rfind("~/", 0) == 0) return home + path.substr(1);
  return path;
}

const SettingValue* find_setting(const ProviderSettings& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? nullptr : &it->second;
}

std::string setting_or_env(const ProviderSettings& s, const std::string& key,
                           const Environment& env, std::initializer_list<const char*> env_names) {
  if (const auto* v = find_setting(s, key)) return v->text;
  for (const char* n : env_names) {
    const char* e = env.get(n);
    if (e != nullptr && *e != '\0') return e;
  }
  return {};
}

long remaining_ms(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 1 ? 1 : static_cast<long>(left);
}

void redact(std::string& s, std::string_view credential) {
  if (credential.size() < 4) return;
  std::size_t p;
  while ((p = s.find(credential)) != std::string::npos) s.replace(p, credential.size(), "[redacted]");
}

std::string sanitize_message(const std::string& m) {
  std::string out;
  for (char c : m.substr(0, 300)) out.push_back(std::isprint(static_cast<unsigned char>(c)) ? c : ' ');
  if (m.size() > 300) out += "...";
  return out;
}

std::string first_line(const std::string& s) {
  std::size_t b = 0;
  while (b < s.size() && (s[b] == '\n' || s[b] == '\r')) ++b;
  const auto nl = s.find_first_of("\r\n", b);
  return sanitize_message(s.substr(b, nl == std::string::npos ? std::string::npos : nl - b));
}

}  // namespace kz
