// A small HTTP/1.1 server (Boost.Beast) for the PDP and, later, MCP: keep-alive, bodies
// up to a limit, optional TLS, a handler that turns a request into a reply. The handler
// runs on the I/O threads and must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/result.h"

namespace kz {

struct HttpRequestView {
  std::string method;          // "GET", "POST", ...
  std::string target;          // "/v1/decide?x=y"
  std::string authorization;   // the Authorization header, "" when absent
  std::string content_type;
  std::string body;
  std::string source;          // the client's address, "127.0.0.1"
  // Every header, names lower-cased, when HttpServerOptions::all_headers is set.
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header of that (lower-case) name, "" when absent.
  std::string_view header(std::string_view name) const;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;   // extra response headers
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8787;           // 0: any free port
  std::string tls_cert, tls_key;       // both set: HTTPS
  unsigned threads = 0;                // 0: one per core
  std::size_t body_limit = 1 << 20;
  std::function<HttpReply(const HttpRequestView&)> handler;
  bool all_headers = false;            // fill HttpRequestView::headers
  // Requests for which this returns true run on a separate pool of `blocking_threads`
  // threads, so that a slow handler (the MCP fetch tool waits on a remote server) never
  // holds an I/O thread.
  std::function<bool(const HttpRequestView&)> blocking;
  unsigned blocking_threads = 8;
  // The reply to a request whose head or body is over the limit, by request target;
  // nullopt (or no function) gives the default, 413 with {"error": "request too large"}.
  std::function<std::optional<HttpReply>(const std::string& target)> too_large;
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(HttpServerOptions opts);
  virtual ~HttpServer() = default;
  virtual std::uint16_t port() const = 0;
  virtual bool tls() const = 0;
  // Stops accepting, lets requests in progress finish (up to `grace`), then closes every
  // connection and joins the threads. Idempotent.
  virtual void stop(int grace_ms = 5000) = 0;
};

}  // namespace kz
