#include "core/bpf_support.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace kz {

namespace {

std::mutex g_capture_mu;
std::string g_captured;   // guarded by g_capture_mu (held for a whole capture)
bool g_capturing = false;

int capture_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || !g_capturing) return 0;
  char buf[1024];
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (n > 0) g_captured.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
  constexpr std::size_t kKeep = 2048;
  if (g_captured.size() > kKeep) g_captured.erase(0, g_captured.size() - kKeep);
  return 0;
}

}  // namespace

std::uint64_t effective_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 16);
  return 0;
}

bool in_initial_pid_namespace() {
  constexpr ino_t kInitPidNsIno = 0xEFFFFFFCU;  // PROC_PID_INIT_INO
  struct stat ns{};
  return ::stat("/proc/self/ns/pid", &ns) != 0 || ns.st_ino == kInitPidNsIno;
}

std::string libbpf_error(int err) {
  char buf[256] = {};
  libbpf_strerror(err < 0 ? err : -err, buf, sizeof buf);
  return buf;
}

LibbpfLogCapture::LibbpfLogCapture() : lock_(g_capture_mu) {
  g_captured.clear();
  g_capturing = true;
  old_ = libbpf_set_print(capture_print);
}

LibbpfLogCapture::~LibbpfLogCapture() {
  libbpf_set_print(old_);
  g_capturing = false;
  g_captured.clear();
}

std::string LibbpfLogCapture::tail() const {
  std::string t = g_captured;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t.empty() ? "" : "; libbpf said: " + t;
}

Error bpf_load_error(const std::string& what, int err, const LibbpfLogCapture* log) {
  return make_error(ErrorKind::Internal, what + ": " + libbpf_error(err) + (log ? log->tail() : std::string()));
}

}  // namespace kz
