/* A real OpenSSL HTTPS client linked statically, for the blind-mode end-to-end tests.
 * Built twice by build_clients.sh:
 *   static_client      fully static (libc too): LD_PRELOAD has no effect at all;
 *   static_ssl_client  dynamic libc, static libssl/libcrypto: the shim loads, but the
 *                      program's SSL_write is its own copy, not libssl.so's.
 * Either way kz's shim cannot serve it, and under `kz run --blind` its connections go to
 * kz's fallback proxy; it trusts the run's CA through SSL_CERT_FILE
 * (SSL_CTX_set_default_verify_paths).
 *
 *   static_client URL ENVVAR [BODY]
 *
 * URL is https://HOST[:PORT][/PATH] where HOST is "localhost" (connects to 127.0.0.1),
 * an IPv4 literal or a bracketed IPv6 literal: a static glibc cannot resolve names
 * without its NSS modules, and the tests only talk to loopback. Sends one HTTP/1.1
 * request (GET, or POST with BODY as application/json) with "Authorization: Bearer
 * $ENVVAR" and "Connection: close"; verifies the peer certificate for HOST (SNI for
 * names); prints "status N" and the response body on stdout. Exits 0 on any HTTP
 * response, 1 on a connection/TLS/protocol error (printed on stderr), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum { EXIT_HTTP = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

static void usage(const char *msg) {
  fprintf(stderr, "static_client: %s\nusage: static_client https://HOST[:PORT][/PATH] ENVVAR [BODY]\n", msg);
  exit(EXIT_USAGE);
}

/* Prints the message and OpenSSL's error queue (the verification reason, if any). */
static void fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, " [%s]", buf);
  }
  fputc('\n', stderr);
  exit(EXIT_ERROR);
}

struct url {
  char host[256];   /* without brackets */
  char port[8];
  const char *path; /* points into the argument; "/" when absent */
  int is_ip;
  struct sockaddr_storage addr;
  socklen_t addr_len;
};

static void parse_url(const char *s, struct url *u) {
  static const char scheme[] = "https://";
  memset(u, 0, sizeof *u);
  if (strncasecmp(s, scheme, sizeof scheme - 1) != 0) usage("URL must start with https://");
  const char *p = s + sizeof scheme - 1;
  const char *host_end;
  const char *after;
  if (*p == '[') {
    host_end = strchr(p, ']');
    if (host_end == NULL) usage("unterminated [IPv6] host");
    ++p;
    after = host_end + 1;
  } else {
    host_end = p + strcspn(p, ":/?#");
    after = host_end;
  }
  size_t n = (size_t)(host_end - p);
  if (n == 0 || n >= sizeof u->host) usage("bad host in URL");
  memcpy(u->host, p, n);
  strcpy(u->port, "443");
  if (*after == ':') {
    ++after;
    size_t pn = strspn(after, "0123456789");
    if (pn == 0 || pn >= sizeof u->port) usage("bad port in URL");
    memcpy(u->port, after, pn);
    u->port[pn] = '\0';
    after += pn;
  }
  if (*after == '\0') u->path = "/";
  else if (*after == '/') u->path = after;
  else usage("bad URL after the host");

  int port = atoi(u->port);
  if (port <= 0 || port > 65535) usage("bad port in URL");
  /* "localhost" is loopback by definition; anything else must be an address literal. */
  const char *ip = strcasecmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&u->addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&u->addr;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((unsigned short)port);
    u->addr_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((unsigned short)port);
    u->addr_len = sizeof *v6;
  } else {
    usage("host must be localhost or an IP literal (a static binary cannot resolve names)");
  }
  u->is_ip = ip == u->host;
}

static int connect_to(const struct url *u) {
  int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket: %s", strerror(errno));
  struct timeval tv = {20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (const struct sockaddr *)&u->addr, u->addr_len) != 0)
    fail("connect to %s port %s: %s", u->host, u->port, strerror(errno));
  return fd;
}

/* A growable buffer for the request and the response. */
struct buf {
  char *data;
  size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) fail("out of memory");
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) fail("out of memory");
  buf_add(b, s, (size_t)n);
  free(s);
}

/* The value of header `name` in the header block [h, end), or NULL. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *vlen) {
  size_t nl = strlen(name);
  for (const char *line = h; line < end;) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (eol == NULL) eol = end;
    if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) ++v;
      const char *ve = eol;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) --ve;
      *vlen = (size_t)(ve - v);
      return v;
    }
    line = eol + 1;
  }
  return NULL;
}

/* Decodes a chunked body in place; returns its length, or -1 when malformed. */
static long dechunk(char *body, size_t len) {
  size_t in = 0, out = 0;
  for (;;) {
    char *eol = memmem(body + in, len - in, "\r\n", 2);
    if (eol == NULL) return -1;
    char *endp;
    unsigned long n = strtoul(body + in, &endp, 16);
    if (endp == body + in) return -1;
    in = (size_t)(eol - body) + 2;
    if (n == 0) return (long)out;
    if (n > len - in || len - in - n < 2) return -1;
    memmove(body + out, body + in, n);
    out += n;
    in += n + 2;
  }
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) usage("wrong arguments");
  struct url u;
  parse_url(argv[1], &u);
  const char *value = getenv(argv[2]);
  if (value == NULL) usage("the variable named on the command line is not set");
  const char *body = argc == 4 ? argv[3] : NULL;

  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) fail("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* The platform's trust: OpenSSL's default file and directory, or SSL_CERT_FILE /
   * SSL_CERT_DIR when set. Verification is never turned off. */
  if (SSL_CTX_set_default_verify_paths(ctx) != 1) fail("SSL_CTX_set_default_verify_paths");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* A server that closes without close_notify is common; the body length is checked
   * against Content-Length below instead. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) fail("SSL_new");
  if (u.is_ip) {
    /* No SNI for address literals (RFC 6066); the certificate must name the IP. */
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u.host) != 1) fail("bad IP %s", u.host);
  } else {
    if (SSL_set_tlsext_host_name(ssl, u.host) != 1) fail("SNI %s", u.host);
    if (SSL_set1_host(ssl, u.host) != 1) fail("hostname %s", u.host);
  }

  int fd = connect_to(&u);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) fail("TLS handshake with %s: certificate verify failed: %s", u.host, X509_verify_cert_error_string(vr));
    fail("TLS handshake with %s failed", u.host);
  }

  struct buf req = {0};
  int default_port = strcmp(u.port, "443") == 0;
  const char *lb = strchr(u.host, ':') ? "[" : "", *rb = strchr(u.host, ':') ? "]" : "";
  buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n", body ? "POST" : "GET", u.path, lb, u.host, rb,
             default_port ? "" : ":", default_port ? "" : u.port);
  buf_printf(&req, "User-Agent: kz-static-client\r\nAccept: */*\r\nAuthorization: Bearer %s\r\n", value);
  if (body) buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
  buf_printf(&req, "Connection: close\r\n\r\n");
  if (body) buf_add(&req, body, strlen(body));
  if (SSL_write(ssl, req.data, (int)req.len) != (int)req.len) fail("TLS write");
  OPENSSL_cleanse(req.data, req.len);   /* the request holds the credential (or token) */
  free(req.data);

  struct buf res = {0};
  char chunk[16384];
  for (;;) {
    errno = 0;
    int n = SSL_read(ssl, chunk, sizeof chunk);
    if (n > 0) {
      buf_add(&res, chunk, (size_t)n);
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN) break;
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) break;   /* plain EOF */
    fail("TLS read");
  }

  char *head_end = res.data ? strstr(res.data, "\r\n\r\n") : NULL;
  int status = 0;
  if (head_end == NULL || sscanf(res.data, "HTTP/1.%*d %d", &status) != 1) fail("no HTTP response from %s", u.host);
  char *resp_body = head_end + 4;
  size_t body_len = res.len - (size_t)(resp_body - res.data);
  size_t vlen;
  const char *te = find_header(res.data, head_end + 2, "Transfer-Encoding", &vlen);
  const char *cl = find_header(res.data, head_end + 2, "Content-Length", &vlen);
  if (te != NULL && vlen >= 7 && strncasecmp(te + vlen - 7, "chunked", 7) == 0) {
    long n = dechunk(resp_body, body_len);
    if (n < 0) fail("malformed chunked response body");
    body_len = (size_t)n;
  } else if (cl != NULL) {
    size_t want = strtoul(cl, NULL, 10);
    if (body_len < want) fail("response body truncated: %zu of %zu bytes", body_len, want);
    body_len = want;
  }
  printf("status %d\n", status);
  fwrite(resp_body, 1, body_len, stdout);
  fflush(stdout);

  SSL_shutdown(ssl);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  free(res.data);
  return EXIT_HTTP;
}
