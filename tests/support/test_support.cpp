#include "test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace kz::test {

std::string source_dir() { return KZ_SOURCE_DIR; }

std::vector<std::pair<std::string, std::string>> fuzz_corpus(const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(source_dir()) / "tests/fuzz/corpus" / name, ec)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.emplace_back(e.path().filename().string(), ss.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::string binary_dir() { return KZ_BINARY_DIR; }
std::string kz_binary() { return std::string(KZ_BINARY_DIR) + "/bin/kz"; }
std::string python3() {
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kz-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}
std::string TempDir::write(const std::string& name, const std::string& content, int mode) const {
  std::string p = file(name);
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << content;
  chmod(p.c_str(), static_cast<mode_t>(mode));
  return p;
}

const TestCa& test_ca() {
  static TestCa ca;
  static std::once_flag once;
  std::call_once(once, [] {
    static TempDir dir;  // lives for the whole test process
    std::string cmd = source_dir() + "/tests/support/make_test_ca.sh " + dir.path();
    auto r = run({"/bin/bash", "-c", cmd});
    if (r.status != 0) throw std::runtime_error("make_test_ca.sh failed: " + r.err);
    ca = TestCa{dir.path(),           dir.file("ca.pem"),    dir.file("server.pem"),
                dir.file("server.key"), dir.file("rogue.pem"), dir.file("rogue.key")};
  });
  return ca;
}

std::string der_of_pem_file(const std::string& pem_file) {
  FILE* f = std::fopen(pem_file.c_str(), "r");
  if (f == nullptr) return {};
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (x == nullptr) return {};
  unsigned char* out = nullptr;
  const int n = i2d_X509(x, &out);
  std::string der = n > 0 ? std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n)) : std::string();
  OPENSSL_free(out);
  X509_free(x);
  return der;
}

std::vector<std::string> tls_args(bool rogue) {
  const auto& ca = test_ca();
  return {"--cert", rogue ? ca.rogue_cert : ca.server_cert, "--key",
          rogue ? ca.rogue_key : ca.server_key};
}

ServerProcess::ServerProcess(const std::string& script, const std::vector<std::string>& args) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  std::vector<std::string> argv_s = {python3(), source_dir() + "/tests/servers/" + script};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  stdin_fd_ = in[1];
  if (rc != 0) { close(out[0]); throw std::runtime_error("cannot start " + script); }
  // Read "PORT n\n" (the server prints it once it is accepting).
  std::string line;
  char c;
  pollfd p{out[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos) {
    if (poll(&p, 1, 20000) <= 0) break;
    ssize_t n = read(out[0], &c, 1);
    if (n <= 0) break;
    line.push_back(c);
  }
  close(out[0]);
  if (line.rfind("PORT ", 0) != 0) throw std::runtime_error(script + " did not start: '" + line + "'");
  port_ = std::atoi(line.c_str() + 5);
}

ServerProcess::~ServerProcess() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (pid_ > 0) {
    int st = 0;
    // Closing stdin makes the server exit; SIGTERM only if it is still there shortly.
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) return;
      pollfd none{-1, 0, 0};
      poll(&none, 0, 10);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &st, 0);
  }
}

std::string ServerProcess::url(const std::string& scheme) const {
  return scheme + "://127.0.0.1:" + std::to_string(port_);
}

RunResult run(const std::vector<std::string>& argv_in, const std::vector<std::string>& env,
              const std::string& stdin_data, const std::string& cwd) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe");
  std::vector<std::string> argv_s = argv_in;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    signal(SIGPIPE, SIG_DFL);
    if (env.empty()) execvp(argv[0], argv.data());
    else execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  RunResult r;
  size_t written = 0;
  int in_fd = in[1];
  if (stdin_data.empty()) { close(in_fd); in_fd = -1; }
  else fcntl(in_fd, F_SETFL, O_NONBLOCK);
  pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
  int open_count = 2;
  char buf[65536];
  while (open_count > 0 || fds[2].fd >= 0) {
    if (poll(fds, 3, -1) < 0) { if (errno == EINTR) continue; break; }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) { close(fds[i].fd); fds[i].fd = -1; --open_count; continue; }
      (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(fds[2].fd, stdin_data.data() + written, stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == stdin_data.size()) { close(fds[2].fd); fds[2].fd = -1; }
    }
  }
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace kz::test

namespace {
// Tests write to pipes of children that may have exited; a broken pipe is an error
// value there, not a reason to kill the test process.
const bool kIgnoreSigpipe = [] { signal(SIGPIPE, SIG_IGN); return true; }();
}  // namespace
