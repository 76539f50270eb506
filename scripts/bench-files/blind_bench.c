// blind_bench: the client and the server of scripts/bench-blind, in C against OpenSSL so
// that the numbers measure TLS and kz's shim, not an interpreter.
//
//   blind_bench server --cert PEM --key PEM [--expect-file FILE]
//       HTTP/1.1 over TLS on 127.0.0.1, a free port; prints "PORT n"; exits when stdin
//       closes. Keep-alive; request bodies (Content-Length) are read and discarded.
//       Answers "ok\n" when the Authorization header is "Bearer <contents of FILE>",
//       "no\n" otherwise, so the client can count the requests whose credential arrived
//       as the real value.
//
//   blind_bench upload  --port P --ca PEM --bytes N [--write-size B] [--auth-env VAR]
//       One connection (to 127.0.0.1, SNI and verified name "localhost"): POST /upload
//       with Content-Length N, the body written B bytes per SSL_write (default 64 KiB).
//       Prints: upload bytes=N seconds=S mb_per_s=X ok=0|1
//
//   blind_bench latency --port P --ca PEM --requests N [--warmup W] [--auth-env VAR]
//       One keep-alive connection: W untimed then N timed GET requests, each one
//       SSL_write of the whole request carrying "Authorization: Bearer $VAR", timed
//       from before the write to the end of the response.
//       Prints: latency n=N median_us=.. p99_us=.. mean_us=.. min_us=.. cpu_us=.. ok=K
//       (cpu_us: the client thread's CPU time per measured request)
//
// Build: cc -O2 -o blind_bench blind_bench.c -lssl -lcrypto -pthread
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what) {
  fprintf(stderr, "blind_bench: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(2);
}

static const char* arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 2; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// ---------------------------------------------------------------------------------------
// Buffered reading of HTTP/1.1 messages over an SSL*.

typedef struct {
  SSL* ssl;
  char buf[64 * 1024];
  size_t start, end;
} Reader;

static int fill(Reader* r) {
  if (r->start == r->end) r->start = r->end = 0;
  if (r->end == sizeof r->buf) {
    if (r->start == 0) return -1;  // head too large
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
  }
  int n = SSL_read(r->ssl, r->buf + r->end, (int)(sizeof r->buf - r->end));
  if (n <= 0) return -1;
  r->end += (size_t)n;
  return n;
}

// Reads a header block; returns its length (including the blank line) with the head at
// r->buf + r->start, or -1 on EOF/error.
static long read_head(Reader* r) {
  for (;;) {
    char* h = memmem(r->buf + r->start, r->end - r->start, "\r\n\r\n", 4);
    if (h) return (long)(h + 4 - (r->buf + r->start));
    if (fill(r) < 0) return -1;
  }
}

static int discard(Reader* r, size_t n) {
  while (n > 0) {
    size_t have = r->end - r->start;
    if (have == 0) {
      if (fill(r) < 0) return -1;
      continue;
    }
    size_t take = have < n ? have : n;
    r->start += take;
    n -= take;
  }
  return 0;
}

// Value of header `name` inside head[0..len), copied to out (NUL-terminated).
static int header_value(const char* head, size_t len, const char* name, char* out, size_t outsz) {
  size_t nl = strlen(name);
  const char* p = head;
  const char* end = head + len;
  while (p < end) {
    const char* eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char* v = p + nl + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) ++v;
      size_t vl = (size_t)(eol - v);
      if (vl >= outsz) vl = outsz - 1;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 1;
    }
    p = eol + 2;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// Server

static SSL_CTX* g_server_ctx;
static char g_expect[8192];

static void* serve_conn(void* arg) {
  int fd = (int)(intptr_t)arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL* ssl = SSL_new(g_server_ctx);
  SSL_set_fd(ssl, fd);
  Reader* r = calloc(1, sizeof *r);
  r->ssl = ssl;
  if (SSL_accept(ssl) == 1) {
    for (;;) {
      long hl = read_head(r);
      if (hl < 0) break;
      const char* head = r->buf + r->start;
      char cl[32] = "0", auth[8192] = "";
      header_value(head, (size_t)hl, "Content-Length", cl, sizeof cl);
      header_value(head, (size_t)hl, "Authorization", auth, sizeof auth);
      int ok = g_expect[0] && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, g_expect) == 0;
      r->start += (size_t)hl;
      if (discard(r, (size_t)strtoull(cl, NULL, 10)) < 0) break;
      static const char ok_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";
      static const char no_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nno\n";
      const char* resp = ok ? ok_resp : no_resp;
      if (SSL_write(ssl, resp, (int)strlen(resp)) <= 0) break;
    }
  }
  SSL_free(ssl);
  close(fd);
  free(r);
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
    pthread_create(&t, NULL, serve_conn, (void*)(intptr_t)fd);
    pthread_detach(t);
  }
}

static int cmd_server(int argc, char** argv) {
  const char* cert = arg(argc, argv, "--cert", NULL);
  const char* key = arg(argc, argv, "--key", NULL);
  const char* expect = arg(argc, argv, "--expect-file", NULL);
  if (!cert || !key) die("server needs --cert and --key");
  if (expect) {
    FILE* f = fopen(expect, "r");
    if (!f) die("cannot read --expect-file");
    size_t n = fread(g_expect, 1, sizeof g_expect - 1, f);
    fclose(f);
    while (n && (g_expect[n - 1] == '\n' || g_expect[n - 1] == '\r')) --n;
    g_expect[n] = 0;
  }
  g_server_ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(g_server_ctx, cert) != 1) die("certificate");
  if (SSL_CTX_use_PrivateKey_file(g_server_ctx, key, SSL_FILETYPE_PEM) != 1) die("key");
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 64) != 0) die("bind/listen");
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

// ---------------------------------------------------------------------------------------
// Client

static SSL* client_connect(int argc, char** argv) {
  int port = atoi(arg(argc, argv, "--port", "0"));
  const char* ca = arg(argc, argv, "--ca", NULL);
  const char* host = arg(argc, argv, "--host", "localhost");
  if (!port || !ca) die("client needs --port and --ca");
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("CA file");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) die("connect");
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host);
  SSL_set1_host(ssl, host);
  if (SSL_connect(ssl) != 1) die("TLS handshake");
  return ssl;
}

static const char* auth_value(int argc, char** argv) {
  const char* var = arg(argc, argv, "--auth-env", "BENCH_KEY");
  const char* v = getenv(var);
  if (!v || !*v) die("the --auth-env variable is not set");
  return v;
}

// Reads one response (head + Content-Length body); returns 1 when the body is "ok".
static int read_response(Reader* r) {
  long hl = read_head(r);
  if (hl < 0) die("connection closed before the response");
  char cl[32] = "0";
  header_value(r->buf + r->start, (size_t)hl, "Content-Length", cl, sizeof cl);
  r->start += (size_t)hl;
  size_t n = (size_t)strtoull(cl, NULL, 10);
  while (r->end - r->start < n)
    if (fill(r) < 0) die("connection closed inside the response body");
  int ok = n >= 2 && memcmp(r->buf + r->start, "ok", 2) == 0;
  r->start += n;
  return ok;
}

static int cmd_upload(int argc, char** argv) {
  unsigned long long total = strtoull(arg(argc, argv, "--bytes", "268435456"), NULL, 10);
  size_t wsize = (size_t)strtoull(arg(argc, argv, "--write-size", "65536"), NULL, 10);
  const char* auth = auth_value(argc, argv);
  SSL* ssl = client_connect(argc, argv);
  // Body: pseudo-random bytes (xorshift), generated before the clock starts.
  size_t blen = 1 << 20;
  if (wsize > blen) blen = wsize;
  unsigned char* body = malloc(blen);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < blen; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    body[i] = (unsigned char)x;
  }
  char head[9000];
  int hl = snprintf(head, sizeof head,
                    "POST /upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
                    auth, total);
  Reader* r = calloc(1, sizeof *r);
  r->ssl = ssl;
  double t0 = now_s();
  if (SSL_write(ssl, head, hl) != hl) die("write head");
  unsigned long long sent = 0;
  size_t off = 0;
  while (sent < total) {
    size_t n = wsize;
    if (n > total - sent) n = (size_t)(total - sent);
    if (off + n > blen) off = 0;
    int w = SSL_write(ssl, body + off, (int)n);
    if (w <= 0) die("write body");
    sent += (unsigned long long)w;
    off += (size_t)w;
  }
  int ok = read_response(r);
  double dt = now_s() - t0;
  printf("upload bytes=%llu seconds=%.6f mb_per_s=%.1f ok=%d\n", total, dt, (double)total / dt / 1e6, ok);
  return 0;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static int cmd_latency(int argc, char** argv) {
  int n = atoi(arg(argc, argv, "--requests", "2000"));
  int warm = atoi(arg(argc, argv, "--warmup", "200"));
  const char* samples_path = arg(argc, argv, "--samples", NULL);
  const char* auth = auth_value(argc, argv);
  SSL* ssl = client_connect(argc, argv);
  char req[9000];
  int rl = snprintf(req, sizeof req,
                    "GET /v1/bench HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                    "Accept: */*\r\n\r\n", auth);
  Reader* r = calloc(1, sizeof *r);
  r->ssl = ssl;
  uint64_t* t = calloc((size_t)n, sizeof *t);
  int ok = 0;
  // The client thread's CPU time over the measured requests: the shim's work per request
  // (it runs in this thread) without the scheduler's noise that latency carries.
  struct timespec c0 = {0, 0}, c1;
  for (int i = -warm; i < n; ++i) {
    if (i == 0) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    uint64_t t0 = now_ns();
    if (SSL_write(ssl, req, rl) != rl) die("write");
    int good = read_response(r);
    uint64_t dt = now_ns() - t0;
    if (i >= 0) {
      t[i] = dt;
      ok += good;
    }
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  double cpu_ns = (double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec);
  if (samples_path) {
    FILE* f = fopen(samples_path, "w");
    if (f) {
      for (int i = 0; i < n; ++i) fprintf(f, "%llu\n", (unsigned long long)t[i]);
      fclose(f);
    }
  }
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += (double)t[i];
  qsort(t, (size_t)n, sizeof *t, cmp_u64);
  double med = n % 2 ? (double)t[n / 2] : ((double)t[n / 2 - 1] + (double)t[n / 2]) / 2;
  size_t p99i = (size_t)((double)n * 0.99);
  if (p99i >= (size_t)n) p99i = (size_t)n - 1;
  printf("latency n=%d median_us=%.2f p99_us=%.2f mean_us=%.2f min_us=%.2f cpu_us=%.2f ok=%d\n", n, med / 1e3,
         (double)t[p99i] / 1e3, sum / n / 1e3, (double)t[0] / 1e3, cpu_ns / n / 1e3, ok);
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fprintf(stderr, "usage: blind_bench server|upload|latency [options]\n");
    return 2;
  }
  if (strcmp(argv[1], "server") == 0) return cmd_server(argc, argv);
  if (strcmp(argv[1], "upload") == 0) return cmd_upload(argc, argv);
  if (strcmp(argv[1], "latency") == 0) return cmd_latency(argc, argv);
  fprintf(stderr, "blind_bench: unknown command %s\n", argv[1]);
  return 2;
}
