// The TLS plaintext tap: uprobes on the functions through which a program hands its
// plaintext to its TLS library (SSL_write, SSL_write_ex, gnutls_record_send), restricted
// to the processes of a run, copying a bounded prefix of each write into a ring buffer.
// Userspace (launcher/sensors/tls_tap.cpp) decides what the bytes mean; nothing secret
// is ever put into a map here, only what the run's programs write.
//
// The server name and socket of each connection come from uprobes on the calls that set
// them, so that a write can be attributed to a host without parsing anything in the
// kernel.
//
// Maps:
//   members  the process tree's map (sensors.bpf.c: one map in the one object)
//   conns    kz_tap_conn_key -> kz_tap_conn     server name and fd per TLS connection
//   taps     ring buffer of kz_tap_event
//   lost     per-CPU count of writes not reported (ring buffer full)
//   scratch  per-CPU space to build a record in
// Part of the one sensors object (sensors.bpf.c), which declares the members map.
#include "proctree_shared.h"
#include "tlstap_shared.h"

#define KZ_AF_INET 2
#define KZ_AF_INET6 10
#define KZ_S_IFMT 00170000
#define KZ_S_IFSOCK 0140000
#define KZ_SIGSTOP 19
#define KZ_SIGCONT 18
#define KZ_SSL_CTRL_SET_TLSEXT_HOSTNAME 55

// Set before load: with --on-leak=kill every write stops its process until userspace
// has looked at the bytes (it then continues or kills it), so a leak is stopped before
// the library encrypts it.
const volatile __u32 kz_stop_on_write = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KZ_TAP_MAX_CONNS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct kz_tap_conn_key);
  __type(value, struct kz_tap_conn);
} conns SEC(".maps");

// A handshake in progress on a thread (tid -> connection): the first TCP send that
// thread makes belongs to it, and tells the connection's peer.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct kz_tap_conn_key);
} handshakes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, KZ_TAP_RINGBUF_BYTES);
} taps SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lost SEC(".maps");

// Where a record is put together before it is copied into the ring at its real size
// (the BPF stack is 512 bytes).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct kz_tap_event);
} scratch SEC(".maps");

static __always_inline __u32 member_tgid(void)
{
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  return bpf_map_lookup_elem(&members, &tgid) ? tgid : 0;
}

// The entry for (this process, conn), created empty when missing.
static __always_inline struct kz_tap_conn *conn_entry(__u32 tgid, const void *conn)
{
  struct kz_tap_conn_key key = {.conn = (__u64)conn, .tgid = tgid};
  struct kz_tap_conn *c = bpf_map_lookup_elem(&conns, &key);
  if (c)
    return c;
  struct kz_tap_conn empty = {.fd = -1, .peer_family = 0};
  // BPF_NOEXIST: a concurrent creator wins; either way the lookup below finds one.
  bpf_map_update_elem(&conns, &key, &empty, BPF_NOEXIST);
  return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline void forget_conn(const void *conn)
{
  __u32 tgid = member_tgid();
  if (!tgid)
    return;
  struct kz_tap_conn_key key = {.conn = (__u64)conn, .tgid = tgid};
  bpf_map_delete_elem(&conns, &key);
}

// The remote address of a TCP socket.
static __always_inline __u16 sock_peer(struct sock *sk, __u16 *port, __u8 addr[16])
{
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  *port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == KZ_AF_INET) {
    __u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    __builtin_memcpy(addr, &a, 4);
    return family;
  }
  if (family == KZ_AF_INET6) {
    BPF_CORE_READ_INTO(addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    return family;
  }
  return 0;
}

// The peer of socket `fd` of the current process, read from its file table.
static __always_inline void read_peer(struct kz_tap_event *e, int fd)
{
  struct task_struct *t = (struct task_struct *)bpf_get_current_task();
  struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
  if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
    return;
  struct file **fds = BPF_CORE_READ(fdt, fd);
  struct file *f = 0;
  if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) != 0 || !f)
    return;
  if ((BPF_CORE_READ(f, f_inode, i_mode) & KZ_S_IFMT) != KZ_S_IFSOCK)
    return;
  struct socket *sock = (struct socket *)BPF_CORE_READ(f, private_data);
  struct sock *sk = BPF_CORE_READ(sock, sk);
  if (!sk)
    return;
  __u16 port = 0;
  __u16 family = sock_peer(sk, &port, e->peer_addr);
  if (family) {
    e->peer_family = family;
    e->peer_port = port;
  }
}

static __always_inline int capture(__u32 fn, const void *conn, const void *buf, __u64 len)
{
  __u32 tgid = member_tgid();
  if (!tgid)
    return 0;
  __u32 zero = 0;
  struct kz_tap_event *e = bpf_map_lookup_elem(&scratch, &zero);
  if (!e)
    return 0;
  e->ts = bpf_ktime_get_boot_ns();
  e->conn = (__u64)conn;
  e->len = len;
  e->tgid = tgid;
  e->tid = (__u32)bpf_get_current_pid_tgid();
  e->fn = fn;
  e->peer_family = 0;
  e->peer_port = 0;
  e->sni[0] = '\0';
  struct kz_tap_conn_key key = {.conn = (__u64)conn, .tgid = tgid};
  struct kz_tap_conn *c = bpf_map_lookup_elem(&conns, &key);
  int fd = -1;
  if (c) {
    bpf_probe_read_kernel_str(e->sni, sizeof(e->sni), c->sni);
    fd = c->fd;
    if (c->peer_family) {
      e->peer_family = c->peer_family;
      e->peer_port = c->peer_port;
      __builtin_memcpy(e->peer_addr, c->peer_addr, sizeof(e->peer_addr));
      fd = -1;
    }
  }
  if (fd >= 0)
    read_peer(e, fd);
  __u32 n = len > KZ_TAP_CAPTURE ? KZ_TAP_CAPTURE : (__u32)len;
  // The mask restates the bound for the verifier.
  n &= (KZ_TAP_CAPTURE * 2 - 1);
  if (n > KZ_TAP_CAPTURE)
    n = KZ_TAP_CAPTURE;
  if (n > 0 && bpf_probe_read_user(e->data, n, buf) != 0)
    n = 0;
  e->captured = n;
  // Kill mode: the stop is sent before the record, so kz's answer (SIGCONT, which also
  // cancels a stop still pending) can never come first and leave the process stopped.
  if (kz_stop_on_write)
    bpf_send_signal(KZ_SIGSTOP);
  // Only the captured bytes go into the ring. Audit mode does not wake kz for each
  // record (kz drains the ring every few milliseconds) unless the ring fills up; kill
  // mode wakes it at once, since the writer waits for the answer.
  __u64 flags = 0;
  if (!kz_stop_on_write)
    flags = bpf_ringbuf_query(&taps, BPF_RB_AVAIL_DATA) > KZ_TAP_RINGBUF_BYTES / 4 ? BPF_RB_FORCE_WAKEUP
                                                                                  : BPF_RB_NO_WAKEUP;
  __u64 size = KZ_TAP_EVENT_HEADER + n;
  if (size > sizeof(*e))
    size = sizeof(*e);
  if (bpf_ringbuf_output(&taps, e, size, flags) != 0) {
    __u64 *lostp = bpf_map_lookup_elem(&lost, &zero);
    if (lostp)
      *lostp += 1;
    if (kz_stop_on_write)
      bpf_send_signal(KZ_SIGCONT);   // nothing will answer for this write
  }
  return 0;
}

static __always_inline int on_sni(const void *ssl, int cmd, const char *name)
{
  if (cmd != KZ_SSL_CTRL_SET_TLSEXT_HOSTNAME || !name)
    return 0;
  __u32 tgid = member_tgid();
  if (!tgid)
    return 0;
  struct kz_tap_conn *c = conn_entry(tgid, ssl);
  if (c && bpf_probe_read_user_str(c->sni, sizeof(c->sni), name) < 0)
    c->sni[0] = '\0';
  return 0;
}

static __always_inline int on_fd(const void *conn, int fd)
{
  __u32 tgid = member_tgid();
  if (!tgid)
    return 0;
  struct kz_tap_conn *c = conn_entry(tgid, conn);
  if (c)
    c->fd = fd;
  return 0;
}

// gnutls_server_name_set's name is not NUL-terminated.
static __always_inline int on_gnutls_name(const void *session, const void *name, __u64 len)
{
  __u32 tgid = member_tgid();
  if (!tgid || !name)
    return 0;
  struct kz_tap_conn *c = conn_entry(tgid, session);
  if (!c)
    return 0;
  __u32 n = len >= KZ_TAP_HOST_MAX ? KZ_TAP_HOST_MAX - 1 : (__u32)len;
  n &= (KZ_TAP_HOST_MAX - 1);
  if (n == 0 || bpf_probe_read_user(c->sni, n, name) != 0)
    n = 0;
  c->sni[n & (KZ_TAP_HOST_MAX - 1)] = '\0';
  return 0;
}

// The thread is about to send this connection's first flight.
static __always_inline int on_handshake(const void *conn)
{
  __u32 tgid = member_tgid();
  if (!tgid)
    return 0;
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct kz_tap_conn_key key = {.conn = (__u64)conn, .tgid = tgid};
  bpf_map_update_elem(&handshakes, &tid, &key, BPF_ANY);
  return 0;
}

// Every probed function enters here; the attach cookie says which one it is. Loaded
// for uprobe_multi links (the loader sets the attach type: libbpf 1.1 has no section
// name for it).
SEC("uprobe")
int kz_tap(struct pt_regs *ctx)
{
  const void *a1 = (const void *)PT_REGS_PARM1(ctx);
  __u64 a2 = PT_REGS_PARM2(ctx);
  __u64 a3 = PT_REGS_PARM3(ctx);
  __u64 a4 = PT_REGS_PARM4(ctx);
  switch (bpf_get_attach_cookie(ctx)) {
  case KZ_TAP_FN_SSL_WRITE:   // int SSL_write(SSL *, const void *buf, int num)
    return (int)a3 > 0 ? capture(KZ_TAP_FN_SSL_WRITE, a1, (const void *)a2, (__u64)(int)a3) : 0;
  case KZ_TAP_FN_SSL_WRITE_EX:   // int SSL_write_ex(SSL *, const void *buf, size_t num, size_t *)
    return a3 > 0 ? capture(KZ_TAP_FN_SSL_WRITE_EX, a1, (const void *)a2, a3) : 0;
  case KZ_TAP_FN_GNUTLS_RECORD_SEND:   // ssize_t gnutls_record_send(session, const void *, size_t)
    return a3 > 0 ? capture(KZ_TAP_FN_GNUTLS_RECORD_SEND, a1, (const void *)a2, a3) : 0;
  case KZ_TAP_FN_SSL_CTRL:   // long SSL_ctrl(SSL *, int cmd, long, void *parg): cmd 55 sets SNI
    return on_sni(a1, (int)a2, (const char *)a4);
  case KZ_TAP_FN_SSL_SET_FD:   // int SSL_set_fd(SSL *, int fd)
    return on_fd(a1, (int)a2);
  case KZ_TAP_FN_GNUTLS_SET_INT2:   // void gnutls_transport_set_int2(session, int recv, int send)
    return on_fd(a1, (int)a3);
  case KZ_TAP_FN_SSL_FREE:   // SSL_free, gnutls_deinit: the address may be reused
  case KZ_TAP_FN_GNUTLS_DEINIT:
    forget_conn(a1);
    return 0;
  case KZ_TAP_FN_GNUTLS_SERVER_NAME_SET:   // (session, type, const void *name, size_t len)
    return on_gnutls_name(a1, (const void *)a3, a4);
  case KZ_TAP_FN_HANDSHAKE:   // SSL_connect, SSL_do_handshake, gnutls_handshake
    return on_handshake(a1);
  }
  return 0;
}

// The first TCP send of a thread in a handshake: its socket is the connection's. Only
// threads with a handshake entry get past the first lookup. A raw tracepoint: kprobes
// need tracefs and fentry is refused on these kernels; the loader leaves this program
// out on a kernel without the tracepoint (then such connections have no peer).
SEC("raw_tp/sock_send_length")
int kz_tcp_sendmsg(struct bpf_raw_tracepoint_args *ctx)
{
  struct sock *sk = (struct sock *)ctx->args[0];
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct kz_tap_conn_key *k = bpf_map_lookup_elem(&handshakes, &tid);
  if (!k)
    return 0;
  struct kz_tap_conn_key key = *k;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
    return 0;
  bpf_map_delete_elem(&handshakes, &tid);
  struct kz_tap_conn *c = conn_entry(key.tgid, (const void *)key.conn);
  if (!c)
    return 0;
  __u16 port = 0;
  __u16 family = sock_peer(sk, &port, c->peer_addr);
  c->peer_port = port;
  c->peer_family = family;
  return 0;
}
