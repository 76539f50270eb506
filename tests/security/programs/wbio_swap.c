/* A verified connection whose write BIO the program swaps for a memory BIO after the
 * handshake (SSL_set0_wbio): the records of the next SSL_write land in memory the program
 * holds, and it forwards them to the socket itself. The object's handshake was seen
 * writing to a TCP socket, so only the write BIO's own type says where the records go.
 *
 * "same-memory": one memory BIO for both directions instead (SSL_set_bio(ssl, mem, mem)):
 * read and write BIO are the same object, as a program's own BIO over a socket is (curl's),
 * but it is OpenSSL's memory buffer; the program moves the records both ways itself.
 *
 * usage: wbio_swap write-only|same-memory CAFILE PORT (the server is localhost, on loopback)
 * Prints the answer's status line and "DONE". Exits non-zero on a setup failure. */
#define _GNU_SOURCE
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"

static void die(const char* what) {
  fprintf(stderr, "wbio_swap: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(2);
}

int main(int argc, char** argv) {
  if (argc != 4) die("usage: wbio_swap write-only|same-memory CAFILE PORT");
  const int same = strcmp(argv[1], "same-memory") == 0;
  argv++;
  const char* tok = getenv("API_KEY");
  if (tok == NULL) die("API_KEY unset");
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1) die("openssl ca");
  SSL_CTX_set_alpn_protos(ctx, (const unsigned char*)"\x08http/1.1", 9);
  const int fd = loopback_connect(atoi(argv[2]));
  if (fd < 0) die("connect");
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
  if (SSL_connect(ssl) != 1) die("handshake (does the certificate verify?)");

  BIO* mem = BIO_new(BIO_s_mem());
  if (same) {
    BIO_up_ref(mem);
    SSL_set_bio(ssl, mem, mem);   /* the socket is the program's alone from here */
  } else {
    SSL_set0_wbio(ssl, mem);   /* reads still come from the socket */
  }
  char req[1024];
  int n = snprintf(req, sizeof req, "GET /wbio-swap HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n", tok);
  if (SSL_write(ssl, req, n) != n) die("SSL_write");
  char rec[16384];
  int k;
  while ((k = BIO_read(mem, rec, sizeof rec)) > 0)   /* the records are the program's */
    if (send(fd, rec, (size_t)k, MSG_NOSIGNAL) != k) die("send");
  char ans[4096];
  int got;
  if (same) {   /* the answer's records go into the same memory BIO, drained above */
    for (;;) {
      got = SSL_read(ssl, ans, sizeof ans - 1);
      if (got > 0) break;
      if (SSL_get_error(ssl, got) != SSL_ERROR_WANT_READ) die("SSL_read");
      ssize_t in = recv(fd, rec, sizeof rec, 0);
      if (in <= 0) die("recv");
      BIO_write(mem, rec, (int)in);
    }
  } else {
    got = SSL_read(ssl, ans, sizeof ans - 1);
  }
  if (got <= 0) die("SSL_read");
  ans[got] = 0;
  char* eol = strstr(ans, "\r\n");
  if (eol) *eol = 0;
  printf("%s\nDONE\n", ans);
  return 0;
}
