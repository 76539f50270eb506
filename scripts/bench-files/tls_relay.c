// tls_relay: the floor of scripts/bench-proxy. The least a TLS-terminating proxy on
// loopback must do per request, with the crypto kz's fallback proxy uses and nothing of
// kz's own: terminate the client's TLS (an EC P-256 leaf, like the run's ephemeral CA
// gives), open a verified TLS connection to the server, and copy decrypted bytes both
// ways. No parsing, no token swap, no audit, one thread per connection blocked in poll()
// (one wake-up per hop, no hand-off between threads).
//
//   tls_relay --cert PEM --key PEM --upstream-port P --ca PEM [--host localhost]
//       Listens on 127.0.0.1, a free port; prints "PORT n"; exits when stdin closes.
//       Each accepted connection gets its own upstream connection to 127.0.0.1:P (SNI
//       and verified name --host, verified against --ca, ALPN not offered: wrk sends
//       none either). Both legs: TCP_NODELAY, OpenSSL's default TLS 1.3 suite
//       (AES-256-GCM here), 16 KiB reads.
//
// Build: cc -O2 -o tls_relay tls_relay.c -lssl -lcrypto -pthread
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static SSL_CTX* g_server_ctx;
static SSL_CTX* g_client_ctx;
static int g_upstream_port;
static const char* g_host;

static void die(const char* what) {
  fprintf(stderr, "tls_relay: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(2);
}

static const char* arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Writes all of p[0, n) (blocking socket).
static int write_all(SSL* s, const char* p, int n) {
  while (n > 0) {
    int w = SSL_write(s, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= w;
  }
  return 0;
}

// Moves what `from` has (one read, plus whatever OpenSSL already decrypted) to `to`.
// 1: bytes moved or a non-application record consumed; 0: clean end; -1: error.
static int pump(SSL* from, SSL* to, char* buf, int cap) {
  do {
    int n = SSL_read(from, buf, cap);
    if (n <= 0) {
      int e = SSL_get_error(from, n);
      if (e == SSL_ERROR_WANT_READ) return 1;   // a ticket or a partial record: poll again
      return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    if (write_all(to, buf, n) < 0) return -1;
  } while (SSL_pending(from) > 0);
  return 1;
}

static SSL* connect_upstream(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return NULL;
  nodelay(fd);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_upstream_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  SSL* s = SSL_new(g_client_ctx);
  SSL_set_fd(s, fd);
  SSL_set_tlsext_host_name(s, g_host);
  SSL_set1_host(s, g_host);
  if (SSL_connect(s) != 1) {
    SSL_free(s);
    close(fd);
    return NULL;
  }
  return s;
}

static void* relay_conn(void* arg) {
  int cfd = (int)(intptr_t)arg;
  nodelay(cfd);
  SSL* c = SSL_new(g_server_ctx);
  SSL_set_fd(c, cfd);
  SSL* u = NULL;
  char* buf = malloc(16384);
  if (buf != NULL && SSL_accept(c) == 1 && (u = connect_upstream()) != NULL) {
    // Without auto-retry a read that consumed only a non-application record (a TLS 1.3
    // session ticket) returns WANT_READ instead of blocking for data that may never come
    // on that side.
    SSL_clear_mode(c, SSL_MODE_AUTO_RETRY);
    SSL_clear_mode(u, SSL_MODE_AUTO_RETRY);
    struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = SSL_get_fd(u), .events = POLLIN}};
    for (;;) {
      if (poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[0].revents && pump(c, u, buf, 16384) <= 0) break;
      if (p[1].revents && pump(u, c, buf, 16384) <= 0) break;
    }
  }
  if (u != NULL) {
    int ufd = SSL_get_fd(u);
    SSL_free(u);
    close(ufd);
  }
  SSL_free(c);
  close(cfd);
  free(buf);
  return NULL;
}

static void* accept_loop(void* arg) {
  int ls = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return NULL;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, relay_conn, (void*)(intptr_t)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(t);
  }
}

int main(int argc, char** argv) {
  const char* cert = arg(argc, argv, "--cert", NULL);
  const char* key = arg(argc, argv, "--key", NULL);
  const char* ca = arg(argc, argv, "--ca", NULL);
  g_upstream_port = atoi(arg(argc, argv, "--upstream-port", "0"));
  g_host = arg(argc, argv, "--host", "localhost");
  if (!cert || !key || !ca || !g_upstream_port) die("usage: tls_relay --cert PEM --key PEM --upstream-port P --ca PEM");
  signal(SIGPIPE, SIG_IGN);
  g_server_ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(g_server_ctx, cert) != 1) die("certificate");
  if (SSL_CTX_use_PrivateKey_file(g_server_ctx, key, SSL_FILETYPE_PEM) != 1) die("key");
  g_client_ctx = SSL_CTX_new(TLS_client_method());
  if (SSL_CTX_load_verify_locations(g_client_ctx, ca, NULL) != 1) die("CA file");
  SSL_CTX_set_verify(g_client_ctx, SSL_VERIFY_PEER, NULL);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 128) != 0) die("bind/listen");
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &al);
  pthread_t t;
  pthread_create(&t, NULL, accept_loop, (void*)(intptr_t)ls);
  printf("PORT %d\n", ntohs(a.sin_port));
  fflush(stdout);
  char b[256];
  while (fread(b, 1, sizeof b, stdin) > 0) {
  }
  return 0;
}
