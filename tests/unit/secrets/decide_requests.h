// Shared by the decide tests: the peer verifier over the test CA, and a broker request
// as the shim would send it (text fields, data, the peer's chain).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "kz/wire/protocol.h"
#include "secrets/peer_verify.h"
#include "test_support.h"

namespace kz::test {

inline std::unique_ptr<PeerVerifier> test_peer_verifier() {
  auto v = PeerVerifier::create(test_ca().ca);
  EXPECT_TRUE(v.ok());
  return v.ok() ? std::make_unique<PeerVerifier>(std::move(*v)) : nullptr;
}

// `http_host` null: the request's Host header is the connection's host.
inline std::unique_ptr<wire::Request> broker_request(wire::Op op, const std::string& data, const std::string& host,
                                                     const std::string& chain, const std::string& method,
                                                     const std::string& path, const std::string* http_host = nullptr) {
  auto r = std::make_unique<wire::Request>();
  std::memset(r.get(), 0, sizeof(wire::Request));
  r->version = wire::kProtocolVersion;
  r->op = op;
  r->channel = wire::Channel::OpenSSL;
  auto put = [](char* dst, std::uint16_t* len, const std::string& v) {
    *len = static_cast<std::uint16_t>(v.size());
    std::memcpy(dst, v.data(), v.size());
  };
  put(r->host, &r->host_len, host);
  put(r->method, &r->method_len, method);
  put(r->path, &r->path_len, path);
  put(r->http_host, &r->http_host_len, http_host != nullptr ? *http_host : host);
  r->data_len = static_cast<std::uint32_t>(data.size());
  std::memcpy(r->data, data.data(), data.size());
  if (!chain.empty()) {
    r->flags |= wire::kFlagPeerHasChain;
    r->chain_len = static_cast<std::uint32_t>(chain.size());
    std::memcpy(r->chain, chain.data(), chain.size());
  }
  EXPECT_TRUE(wire::request_is_valid(*r, sizeof(wire::Request)));
  return r;
}

}  // namespace kz::test
