// Test-only helpers: a test CA made at test time, local server processes on 127.0.0.1,
// temporary directories, running the kz binary.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kz::test {

std::string source_dir();     // repository root
std::string binary_dir();     // build directory
std::string kz_binary();      // build/bin/kz
std::string python3();        // Debian's /usr/bin/python3 when present

// The checked-in seed corpus of fuzz target `name` (tests/fuzz/corpus/NAME/): each
// regular file's name and bytes, sorted by name. Empty when the directory is missing.
std::vector<std::pair<std::string, std::string>> fuzz_corpus(const std::string& name);

// A fresh temporary directory, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& content, int mode = 0600) const;
 private:
  std::string path_;
};

// The per-process test CA (ca.pem, server.pem/key, rogue.pem/key); see make_test_ca.sh.
struct TestCa {
  std::string dir, ca, server_cert, server_key, rogue_cert, rogue_key;
};
const TestCa& test_ca();
// The first certificate of a PEM file as DER (the chain a TLS client would be sent);
// empty when the file cannot be read.
std::string der_of_pem_file(const std::string& pem_file);

// A server started as `python3 tests/servers/<script> ARGS...`; it prints "PORT n".
// Stopped (stdin closed, then SIGTERM, then waited for) on destruction.
class ServerProcess {
 public:
  ServerProcess(const std::string& script, const std::vector<std::string>& args);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  int port() const { return port_; }
  std::string url(const std::string& scheme = "https") const;
 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int port_ = 0;
};

// Start a TLS server with the test CA's leaf (or the rogue one).
std::vector<std::string> tls_args(bool rogue = false);

// Run a command, capture stdout/stderr and exit status. `env` replaces the environment
// when non-empty (entries "K=V"); `stdin_data` is fed to it.
struct RunResult {
  int status = -1;          // exit code, or 128+signal
  std::string out, err;
};
RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              const std::string& stdin_data = "", const std::string& cwd = "");

std::string read_file(const std::string& path);
bool contains(const std::string& hay, const std::string& needle);

}  // namespace kz::test
