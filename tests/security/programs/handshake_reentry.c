/* A TLS handshake that runs inside a library call the shim makes while it holds a
 * connection's state (review 53 #2). OpenSSL's handshake starts with SSL_clear, called
 * through the PLT, so the shim's SSL_clear hook runs inside that call and takes the same
 * connection's lock: before the fix the program hung there, for good.
 *
 * usage: handshake_reentry VARIANT CAFILE PORT (the server is localhost, on loopback)
 *
 * "first-write-carry": a fresh object whose handshake is left to SSL_write, and whose
 *   first write ends with what may be the start of a token (the shim carries those bytes
 *   and writes the rest itself). Nothing hostile is needed for this one.
 * "clear-then-read": a request with a token on a verified connection (the connection now
 *   carries a value, so its reads go through the shim's inbound stream); the object is
 *   then cleared with the library's own SSL_clear, past the hook, given a new
 *   non-blocking socket, and read from first: the handshake runs inside that read.
 * "own-bio-lazy": a program's own BIO over a socket (as curl's is), the handshake left to
 *   the first write, which holds the token: the shim learns the socket during the
 *   handshake it completes, and swaps.
 * "clear-after-h2": a verified connection that starts with the HTTP/2 preface (the shim
 *   then writes through its h2 engine), cleared past the hook and given a new socket; the
 *   next write (an HTTP/2 frame) runs the handshake. No request follows on this one.
 *
 * The others then send a request with the token and read the answer. Prints
 * "DONE" at the end. Exits non-zero on a setup failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

static void die(const char* what) {
  fprintf(stderr, "handshake_reentry: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(2);
}

static int tcp_connect(int port) {
  int fd = loopback_connect(port);
  if (fd < 0) die("connect");
  return fd;
}

static const char* token(void) {
  const char* tok = getenv("API_KEY");
  if (tok == NULL) die("API_KEY unset");
  return tok;
}

/* All of [p, p+n), retrying a non-blocking socket's want-read/want-write. */
static void write_all(SSL* ssl, const char* p, int n) {
  while (n > 0) {
    int rc = SSL_write(ssl, p, n);
    if (rc > 0) {
      p += rc;
      n -= rc;
      continue;
    }
    int e = SSL_get_error(ssl, rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) die("SSL_write");
    struct pollfd f = {SSL_get_fd(ssl), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
    poll(&f, 1, 10000);
  }
}

/* One answer (its first bytes are enough: the server answers each request at once). */
static void read_answer(SSL* ssl) {
  char buf[4096];
  for (;;) {
    int rc = SSL_read(ssl, buf, sizeof buf);
    if (rc > 0) return;
    int e = SSL_get_error(ssl, rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) die("SSL_read");
    struct pollfd f = {SSL_get_fd(ssl), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
    poll(&f, 1, 10000);
  }
}

/* A request for path naming host, with the token: head (up to and including "Bearer "),
 * the token, and the end. */
static void send_request(SSL* ssl, const char* host, const char* path) {
  char head[512];
  int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer ", path, host);
  write_all(ssl, head, n);
  write_all(ssl, token(), (int)strlen(token()));
  write_all(ssl, "\r\n\r\n", 4);
}

/* A program's own BIO over a socket (as curl's is): send and recv, nothing else. */
static int own_bio_write(BIO* b, const char* p, int n) {
  ssize_t k = send((int)(intptr_t)BIO_get_data(b), p, (size_t)n, MSG_NOSIGNAL);
  return k < 0 ? -1 : (int)k;
}
static int own_bio_read(BIO* b, char* p, int n) {
  ssize_t k = recv((int)(intptr_t)BIO_get_data(b), p, (size_t)n, 0);
  return k < 0 ? -1 : (int)k;
}
static long own_bio_ctrl(BIO* b, int cmd, long num, void* ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}
static BIO* own_bio(int fd) {
  static BIO_METHOD* m;
  if (m == NULL) {
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "own socket");
    BIO_meth_set_write(m, own_bio_write);
    BIO_meth_set_read(m, own_bio_read);
    BIO_meth_set_ctrl(m, own_bio_ctrl);
  }
  BIO* b = BIO_new(m);
  BIO_set_data(b, (void*)(intptr_t)fd);
  BIO_set_init(b, 1);
  return b;
}

static SSL* new_object(SSL_CTX* ctx, const char* host, int fd) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == NULL) die("SSL_new");
  if (fd >= 0) SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host);
  SSL_set1_host(ssl, host);
  SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
  SSL_set_connect_state(ssl);
  return ssl;
}

/* The library's own SSL_clear, past the shim's hook, keeping nothing of the session
 * that matters here; then a new socket, non-blocking. */
static int clear_past_hook_and_reconnect(SSL* ssl, int port) {
  void* h = dlopen("libssl.so.3", RTLD_LAZY | RTLD_NOLOAD);
  int (*own_clear)(SSL*) = h ? (int (*)(SSL*))dlsym(h, "SSL_clear") : NULL;
  if (own_clear == NULL) die("SSL_clear not found in libssl.so.3");
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  if (own_clear(ssl) != 1) die("SSL_clear");
  int fd = tcp_connect(port);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  SSL_set_fd(ssl, fd);
  return fd;
}

int main(int argc, char** argv) {
  if (argc != 4) die("usage: handshake_reentry VARIANT CAFILE PORT");
  const char* variant = argv[1];
  const char* host = "localhost";
  const int port = atoi(argv[3]);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1) die("openssl ca");
  /* HTTP/1.1 only: the shim follows h2 through its own engine. */
  SSL_CTX_set_alpn_protos(ctx, (const unsigned char*)"\x08http/1.1", 9);
  char head[512];

  if (strcmp(variant, "first-write-carry") == 0) {
    SSL* ssl = new_object(ctx, host, tcp_connect(port));
    /* The first write is a whole head and a body that ends with the start of a token
       ("KZ_T"): the shim carries those bytes to see whether the next write completes a
       token, and writes the rest itself. */
    const char* body = "note: KZ_TOK";
    int n = snprintf(head, sizeof head, "POST /first HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n%.9s", host,
                     strlen(body), body);
    write_all(ssl, head, n);
    if (SSL_is_init_finished(ssl) != 1) die("the handshake did not run in SSL_write");
    write_all(ssl, body + 9, (int)strlen(body) - 9);
    read_answer(ssl);
    send_request(ssl, host, "/after");
    read_answer(ssl);
  } else if (strcmp(variant, "own-bio-lazy") == 0) {
    SSL* ssl = new_object(ctx, host, -1);
    BIO* b = own_bio(tcp_connect(port));
    SSL_set_bio(ssl, b, b);
    send_request(ssl, host, "/own-bio");   /* the handshake runs in its first write */
    read_answer(ssl);
  } else if (strcmp(variant, "clear-then-read") == 0 || strcmp(variant, "clear-after-h2") == 0) {
    const int h2 = strcmp(variant, "clear-after-h2") == 0;
    int fd0 = tcp_connect(port);
    SSL* ssl = new_object(ctx, host, fd0);
    if (SSL_connect(ssl) != 1) die("handshake (does the certificate verify?)");
    if (h2) {
      /* The HTTP/2 client preface: the shim follows the connection with its h2 engine,
         whose writes it makes itself. */
      static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      write_all(ssl, preface, (int)sizeof preface - 1);
    } else {
      send_request(ssl, host, "/first");
      read_answer(ssl);
    }
    close(fd0);
    clear_past_hook_and_reconnect(ssl, port);
    if (h2) {
      /* An empty SETTINGS frame: what the h2 engine takes and writes itself. The server
         speaks HTTP/1.1 only, so this connection ends here. */
      static const char settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
      write_all(ssl, settings, (int)sizeof settings);
    } else {
      char b[64];
      int rc = SSL_read(ssl, b, sizeof b);   /* the handshake runs in here */
      if (rc > 0) die("an answer before any request");
      int e = SSL_get_error(ssl, rc);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) die("SSL_read after the clear");
      send_request(ssl, host, "/second");
      read_answer(ssl);
    }
  } else {
    die("unknown variant");
  }
  printf("DONE\n");
  return 0;
}
