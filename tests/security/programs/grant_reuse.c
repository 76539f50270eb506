/* An agent's attempt to move a blind-mode grant to a host it is not bound to.
 *
 *   grant_reuse LIB VARIANT CAFILE BOUND_HOST BOUND_PORT UNBOUND_HOST UNBOUND_PORT
 *
 * LIB: gnutls | openssl. The token is read from $API_KEY.
 * 1. A TLS session to the bound host (127.0.0.1:BOUND_PORT, SNI BOUND_HOST) sends a
 *    request with the token: the shim swaps it and keeps a connection grant.
 * 2. The session is freed through the TLS library's own symbol (a handle on the library,
 *    past the shim's hook), so the shim's free hook never runs.
 * 3. A new session is made until it sits at the old one's address, then connects to the
 *    unbound host (its certificate verifies for UNBOUND_HOST) and sends the same request.
 *
 * VARIANT: "hooked-new" makes the new session through the normal (hooked) call;
 * "bypass-all" makes it through the library's own symbol too and, for OpenSSL, first
 * frees every SSL ex-data index, so only the grant's peer check is left to stop it.
 * (OpenSSL's own SSL_new calls SSL_clear through the PLT, which reaches the shim's hook.)
 * "clear-past-hook" (OpenSSL): no new object at all: the session is readied for a new
 * connection with the library's own SSL_clear and connects to the unbound host.
 * "clear-keep-session" (OpenSSL): as "clear-past-hook", but with two requests on the
 * first connection (the grant then has a use to report), and the object is marked shut
 * down first, so SSL_clear keeps its session (for resumption) and with it the bound
 * peer's chain; it keeps the bound name as its SNI, verifies nothing, and leaves the
 * handshake with the unbound host to SSL_write. Until that handshake runs, the object
 * reports the bound peer's chain and name.
 *
 * Prints "SAME_POINTER 1" when the new session reused the address (else the run proves
 * nothing), then "DONE". Exits non-zero on a setup failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

static const char* variant;
static const char* cafile;

static void die(const char* what) {
  fprintf(stderr, "grant_reuse: %s\n", what);
  exit(2);
}

static int tcp_connect(int port) {
  int fd = loopback_connect(port);
  if (fd < 0) die("connect");
  return fd;
}

static void* lib_symbol(const char* lib, const char* name) {
  void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
  if (h == NULL) die("library not loaded");
  void* p = dlsym(h, name);
  if (p == NULL) die("symbol not found in the library");
  return p;
}

static int request(char* out, size_t cap, const char* host, const char* path) {
  const char* tok = getenv("API_KEY");
  if (tok == NULL) die("API_KEY unset");
  return snprintf(out, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", path, host, tok);
}

/* ---- GnuTLS ---------------------------------------------------------------------- */

static gnutls_certificate_credentials_t g_cred;

static void gtls_request(gnutls_session_t s, int port, const char* host, const char* path) {
  int fd = tcp_connect(port);
  if (gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host)) != 0) die("gnutls sni");
  gnutls_set_default_priority(s);
  gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, g_cred);
  gnutls_session_set_verify_cert(s, host, 0);
  gnutls_transport_set_int(s, fd);
  int rc;
  do rc = gnutls_handshake(s); while (rc < 0 && !gnutls_error_is_fatal(rc));
  if (rc < 0) die("gnutls handshake (does the certificate verify?)");
  char buf[2048];
  int n = request(buf, sizeof buf, host, path);
  if (gnutls_record_send(s, buf, (size_t)n) != n) die("gnutls send");
  ssize_t got;
  do got = gnutls_record_recv(s, buf, sizeof buf); while (got == GNUTLS_E_AGAIN || got == GNUTLS_E_INTERRUPTED);
  if (got <= 0) { fprintf(stderr, "gnutls recv: %s\n", gnutls_strerror((int)got)); die("gnutls recv"); }
  close(fd);
}

static int run_gnutls(const char* bh, int bp, const char* uh, int up) {
  gnutls_global_init();
  gnutls_certificate_allocate_credentials(&g_cred);
  if (gnutls_certificate_set_x509_trust_file(g_cred, cafile, GNUTLS_X509_FMT_PEM) <= 0) die("gnutls ca");
  gnutls_session_t first;
  if (gnutls_init(&first, GNUTLS_CLIENT) != 0) die("gnutls_init");
  gtls_request(first, bp, bh, "/first");

  void (*own_deinit)(gnutls_session_t) = (void (*)(gnutls_session_t))lib_symbol("libgnutls.so.30", "gnutls_deinit");
  int (*own_init)(gnutls_session_t*, unsigned) =
      (int (*)(gnutls_session_t*, unsigned))lib_symbol("libgnutls.so.30", "gnutls_init");
  const void* old = first;
  own_deinit(first);
  gnutls_session_t second = NULL;
  int same = 0;
  for (int i = 0; i < 64 && !same; ++i) {   /* a few tries: the allocator decides */
    if (strcmp(variant, "bypass-all") == 0 ? own_init(&second, GNUTLS_CLIENT) : gnutls_init(&second, GNUTLS_CLIENT))
      die("gnutls_init");
    same = (const void*)second == old;
  }
  printf("SAME_POINTER %d\n", same);
  fflush(stdout);
  gtls_request(second, up, uh, "/second");
  return 0;
}

/* ---- OpenSSL --------------------------------------------------------------------- */

/* A verified connection to host on port; returns its socket. */
static int ossl_open(SSL* ssl, int port, const char* host) {
  int fd = tcp_connect(port);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host);
  SSL_set1_host(ssl, host);
  SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
  if (SSL_connect(ssl) != 1) die("openssl handshake (does the certificate verify?)");
  return fd;
}

/* One request naming host and its answer, on ssl as it is. */
static void ossl_exchange(SSL* ssl, const char* host, const char* path) {
  char buf[2048];
  int n = request(buf, sizeof buf, host, path);
  if (SSL_write(ssl, buf, n) != n) die("openssl write");
  if (SSL_read(ssl, buf, sizeof buf) <= 0) die("openssl read");
}

static void ossl_request(SSL* ssl, int port, const char* host, const char* path) {
  int fd = ossl_open(ssl, port, host);
  ossl_exchange(ssl, host, path);
  close(fd);
}

static int run_openssl(const char* bh, int bp, const char* uh, int up) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) die("openssl ca");
  SSL* first = SSL_new(ctx);
  if (strcmp(variant, "clear-keep-session") == 0) {
    /* Two requests on the first connection: the second is answered from the grant, so
       the grant has a use to report when the object is cleared. */
    int fd0 = ossl_open(first, bp, bh);
    ossl_exchange(first, bh, "/first");
    ossl_exchange(first, bh, "/again");
    close(fd0);
  } else {
    ossl_request(first, bp, bh, "/first");
  }
  if (strcmp(variant, "clear-past-hook") == 0) {
    int (*own_clear)(SSL*) = (int (*)(SSL*))lib_symbol("libssl.so.3", "SSL_clear");
    if (own_clear(first) != 1) die("SSL_clear");
    printf("SAME_POINTER 1\n");
    fflush(stdout);
    ossl_request(first, up, uh, "/second");
    return 0;
  }

  if (strcmp(variant, "clear-keep-session") == 0) {
    SSL_set_shutdown(first, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    int (*own_clear)(SSL*) = (int (*)(SSL*))lib_symbol("libssl.so.3", "SSL_clear");
    if (own_clear(first) != 1) die("SSL_clear");
    if (SSL_get_session(first) == NULL) die("SSL_clear dropped the session: the test proves nothing");
    printf("SAME_POINTER 1\n");
    fflush(stdout);
    int fd = tcp_connect(up);
    SSL_set_fd(first, fd);
    SSL_set_verify(first, SSL_VERIFY_NONE, NULL);
    ossl_exchange(first, bh, "/second");   /* Host: the bound name, as a grant needs */
    close(fd);
    return 0;
  }

  void (*own_free)(SSL*) = (void (*)(SSL*))lib_symbol("libssl.so.3", "SSL_free");
  SSL* (*own_new)(SSL_CTX*) = (SSL * (*)(SSL_CTX*)) lib_symbol("libssl.so.3", "SSL_new");
  if (strcmp(variant, "bypass-all") == 0) {
    /* Whoever registered a free callback on SSL objects loses it. */
    int (*free_index)(int, int) = (int (*)(int, int))lib_symbol("libcrypto.so.3", "CRYPTO_free_ex_index");
    for (int i = 0; i < 64; ++i) free_index(CRYPTO_EX_INDEX_SSL, i);
  }
  const void* old = first;
  own_free(first);
  SSL* second = NULL;
  int same = 0;
  for (int i = 0; i < 64 && !same; ++i) {
    second = strcmp(variant, "bypass-all") == 0 ? own_new(ctx) : SSL_new(ctx);
    if (second == NULL) die("SSL_new");
    same = (const void*)second == old;
  }
  printf("SAME_POINTER %d\n", same);
  fflush(stdout);
  ossl_request(second, up, uh, "/second");
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 8) die("usage: grant_reuse LIB VARIANT CAFILE BOUND_HOST BOUND_PORT UNBOUND_HOST UNBOUND_PORT");
  variant = argv[2];
  cafile = argv[3];
  int rc = strcmp(argv[1], "gnutls") == 0
               ? run_gnutls(argv[4], atoi(argv[5]), argv[6], atoi(argv[7]))
               : run_openssl(argv[4], atoi(argv[5]), argv[6], atoi(argv[7]));
  printf("DONE\n");
  return rc;
}
