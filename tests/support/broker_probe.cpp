// kz_broker_probe: speaks the broker protocol (kz/wire/protocol.h) the way a hostile
// agent's own program would, for the security tests. It builds well-formed requests from
// its arguments, sends them on a broker connection (a path, or a descriptor it was
// handed) and prints one line per answer:
//   reply I decision=allow|refuse|unknown|incomplete reason=TEXT data_hex=HEX
//   closed after I          (the broker closed the connection, or it failed)
// Usage:
//   kz_broker_probe (--socket PATH | --fd N) --op swap|redact|report --data TEXT
//                   [--host H] [--chain PEM_FILE] [--method M] [--path P] [--count N]
//                   [--vary]   (redact: make each request's data differ in its last byte)
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kz/wire/protocol.h"

namespace {

using kz::wire::Decision;
using kz::wire::Op;

std::string der_chain(const std::string& pem_file) {
  std::string out;
  FILE* f = std::fopen(pem_file.c_str(), "r");
  if (f == nullptr) return out;
  while (X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr)) {
    unsigned char* p = nullptr;
    const int n = i2d_X509(x, &p);
    if (n > 0) out.append(reinterpret_cast<char*>(p), static_cast<std::size_t>(n));
    OPENSSL_free(p);
    X509_free(x);
  }
  std::fclose(f);
  return out;
}

const char* decision_name(Decision d) {
  switch (d) {
    case Decision::Allow: return "allow";
    case Decision::Refuse: return "refuse";
    case Decision::Incomplete: return "incomplete";
    case Decision::Unknown: return "unknown";
    case Decision::Hold: return "hold";
  }
  return "?";
}

void copy(char* dst, std::uint16_t* len, std::size_t cap, const std::string& src) {
  const std::size_t n = src.size() < cap ? src.size() : cap;
  std::memcpy(dst, src.data(), n);
  *len = static_cast<std::uint16_t>(n);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path, op = "swap", data, host, chain_file, method, path;
  int fd = -1, count = 1;
  bool vary = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--socket") socket_path = next();
    else if (a == "--fd") fd = std::atoi(next().c_str());
    else if (a == "--op") op = next();
    else if (a == "--data") data = next();
    else if (a == "--host") host = next();
    else if (a == "--chain") chain_file = next();
    else if (a == "--method") method = next();
    else if (a == "--path") path = next();
    else if (a == "--count") count = std::atoi(next().c_str());
    else if (a == "--vary") vary = true;
    else { std::fprintf(stderr, "kz_broker_probe: unknown argument %s\n", a.c_str()); return 2; }
  }
  if (fd < 0) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) return 2;
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::printf("closed after 0\n");
      return 0;
    }
  }
  const std::string chain = chain_file.empty() ? std::string() : der_chain(chain_file);
  auto req = std::make_unique<kz::wire::Request>();
  auto rep = std::make_unique<kz::wire::Reply>();
  for (int i = 0; i < count; ++i) {
    std::memset(req.get(), 0, sizeof *req);
    req->version = kz::wire::kProtocolVersion;
    req->op = op == "redact" ? Op::Redact : op == "report" ? Op::Report : Op::Swap;
    req->channel = kz::wire::Channel::OpenSSL;
    req->pid = static_cast<std::uint32_t>(getpid());
    req->conn_id = 1;
    copy(req->host, &req->host_len, kz::wire::kMaxHost, host);
    copy(req->method, &req->method_len, kz::wire::kMaxMethod, method);
    copy(req->path, &req->path_len, kz::wire::kMaxPath, path);
    std::string d = data;
    if (vary && !d.empty()) d.back() = static_cast<char>('A' + i % 26);
    const std::size_t dn = d.size() < kz::wire::kMaxData ? d.size() : kz::wire::kMaxData;
    std::memcpy(req->data, d.data(), dn);
    req->data_len = static_cast<std::uint32_t>(dn);
    if (!chain.empty() && chain.size() <= kz::wire::kMaxChain) {
      std::memcpy(req->chain, chain.data(), chain.size());
      req->chain_len = static_cast<std::uint32_t>(chain.size());
      req->flags |= kz::wire::kFlagPeerHasChain;
    }
    if (send(fd, req.get(), sizeof *req, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof *req)) {
      std::printf("closed after %d\n", i);
      return 0;
    }
    const ssize_t n = recv(fd, rep.get(), sizeof *rep, MSG_TRUNC);
    if (n != static_cast<ssize_t>(sizeof *rep)) {
      std::printf("closed after %d\n", i);
      return 0;
    }
    std::string hex;
    for (std::uint32_t k = 0; k < rep->data_len && k < kz::wire::kMaxData; ++k) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", rep->data[k]);
      hex += b;
    }
    std::printf("reply %d decision=%s reason=%.*s data_hex=%s\n", i, decision_name(rep->decision),
                static_cast<int>(rep->reason_len < kz::wire::kMaxReason ? rep->reason_len : kz::wire::kMaxReason),
                rep->reason, hex.c_str());
    std::fflush(stdout);
  }
  return 0;
}
