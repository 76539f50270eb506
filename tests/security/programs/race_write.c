/* A hostile agent's race (issue 15, class 9): one thread writes a request with a token
 * through SSL_write while another flips the request's path between an allowed and a
 * forbidden spelling of the same length. If the shim checks one version of the buffer
 * and sends another, the value goes to the forbidden path.
 *
 * usage: race_write HOST PORT TRIES [CA_FILE]   (token from $API_KEY)
 * Each try is one TLS connection (verified for HOST) with one request; the flipping
 * never stops while the writes happen. Prints "done N" after N tries. Without CA_FILE
 * the default trust store is used (SSL_CERT_FILE: kz's proxy CA under --blind=proxy). */
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char request[4096];
static size_t path_at;
static atomic_int stop;

static void *flipper(void *arg) {
  (void)arg;
  volatile char *p = request + path_at;
  const char *a = "/v1/ok", *b = "/zz/no";
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 6; ++i) p[i] = b[i];
    for (int i = 0; i < 6; ++i) p[i] = a[i];
  }
  return NULL;
}

static int connect_to(const char *host, const char *port) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_INET;
  if (getaddrinfo(host, port, &hints, &res) != 0) return -1;
  int fd = socket(res->ai_family, res->ai_socktype, 0);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  const char *host = argv[1], *port = argv[2], *tok = getenv("API_KEY");
  const int tries = atoi(argv[3]);
  if (tok == NULL) return 2;
  int n = snprintf(request, sizeof request,
                   "GET /v1/ok/race HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n", host, tok);
  if (n <= 0 || (size_t)n >= sizeof request) return 2;
  path_at = 4;   /* after "GET " */
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (argc > 4) SSL_CTX_load_verify_locations(ctx, argv[4], NULL);
  else SSL_CTX_set_default_verify_paths(ctx);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  pthread_t th;
  pthread_create(&th, NULL, flipper, NULL);
  int done = 0;
  for (int i = 0; i < tries; ++i) {
    int fd = connect_to(host, port);
    if (fd < 0) break;
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, request, n) == n) {
      char buf[4096];
      while (SSL_read(ssl, buf, sizeof buf) > 0) {
      }
      ++done;
    } else {
      ERR_print_errors_fp(stderr);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
  }
  atomic_store(&stop, 1);
  pthread_join(th, NULL);
  printf("done %d\n", done);
  return done == tries ? 0 : 1;
}
