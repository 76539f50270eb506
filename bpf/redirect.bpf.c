// Blind mode's transparent redirect (privileged variant). Attached to the cgroup made
// for one `kz run`: outbound TCP connects of its members to the configured ports are
// rewritten to kz's TLS proxy, and the original destination is kept for the proxy
// (by_client) and for the program's own getpeername() (by_cookie).
//
// Cgroup hooks run for sockets created by members of the run cgroup (a socket belongs
// to the cgroup of the process that created it), so kz's own sockets, including the
// proxy's upstream connections, are never touched.
//
// Maps (see redirect_shared.h for the structs):
//   ports       hash     u16 host-order port -> u8      ports to redirect
//   verdicts    lru hash u32 tgid -> u8 KZ_VERDICT_*     shim or proxy, per process
//   by_cookie   lru hash u64 socket cookie -> kz_redir_dst   filled by connect4/6
//   by_client   lru hash kz_redir_client -> kz_redir_dst     filled by sockops, taken
//                                                            (deleted) by the proxy
//   run_cgroup  cgroup array [0] = the run cgroup        filter for the tracepoints
//   exec_events ring buffer of kz_exec_event             to the userspace classifier
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "redirect_shared.h"

// GPL-compatible: bpf_probe_read_kernel_str and bpf_current_task_under_cgroup are
// GPL-only helpers.
char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct kz_redir_config kz_config = {};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KZ_REDIR_MAX_PORTS);
  __type(key, __u16);
  __type(value, __u8);
} ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KZ_REDIR_MAX_PROCS);
  __type(key, __u32);
  __type(value, __u8);
} verdicts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KZ_REDIR_MAX_CONNS);
  __type(key, __u64);
  __type(value, struct kz_redir_dst);
} by_cookie SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, KZ_REDIR_MAX_CONNS);
  __type(key, struct kz_redir_client);
  __type(value, struct kz_redir_dst);
} by_client SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} run_cgroup SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, KZ_REDIR_RINGBUF_BYTES);
} exec_events SEC(".maps");

// Is this connect one the proxy must see? Only for listed ports, and not for processes
// the shim already serves. A process with no verdict yet (it has not been classified,
// or its classification was lost) IS redirected: the proxy classifies it synchronously
// when it accepts, and for a program the shim serves it splices the bytes unchanged and
// calls mark_shim_served(), so later connects go direct. Failing towards the proxy means
// a program the shim cannot serve never reaches the network with only a token it cannot
// swap; the cost of the other mistake is one spliced connection.
static __always_inline int wanted(__u16 port_host)
{
  if (!bpf_map_lookup_elem(&ports, &port_host))
    return 0;
  if (!kz_config.all_programs) {
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u8 *v = bpf_map_lookup_elem(&verdicts, &tgid);
    if (v && *v == KZ_VERDICT_PASS)
      return 0;
  }
  return 1;
}

// Keeps the original destination under the socket's cookie. Returns 0 when it could not
// be stored: the caller then leaves the connect alone, since a proxy that cannot learn
// the destination would only drop the connection.
static __always_inline int remember(struct bpf_sock_addr *ctx, struct kz_redir_dst *d)
{
  __u64 cookie = bpf_get_socket_cookie(ctx);
  d->tgid = bpf_get_current_pid_tgid() >> 32;
  return bpf_map_update_elem(&by_cookie, &cookie, d, BPF_ANY) == 0;
}

static __always_inline int is_tcp(struct bpf_sock_addr *ctx)
{
  return ctx->type == KZ_SOCK_STREAM && ctx->protocol == KZ_IPPROTO_TCP;
}

SEC("cgroup/connect4")
int kz_connect4(struct bpf_sock_addr *ctx)
{
  if (!is_tcp(ctx) || kz_config.proxy4_port == 0)
    return 1;
  __u32 ip = ctx->user_ip4;
  __u16 nport = (__u16)ctx->user_port;
  if (ip == kz_config.proxy4_addr && nport == kz_config.proxy4_port)
    return 1;  // the proxy itself: never loop
  if (!wanted(bpf_ntohs(nport)))
    return 1;

  struct kz_redir_dst d = {};
  d.addr[0] = ip;
  d.port = nport;
  d.family = KZ_AF_INET;
  d.proxy_family = KZ_AF_INET;
  if (!remember(ctx, &d))
    return 1;
  ctx->user_ip4 = kz_config.proxy4_addr;
  ctx->user_port = kz_config.proxy4_port;
  return 1;
}

SEC("cgroup/connect6")
int kz_connect6(struct bpf_sock_addr *ctx)
{
  if (!is_tcp(ctx))
    return 1;
  __u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
  __u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
  __u16 nport = (__u16)ctx->user_port;
  // ::ffff:a.b.c.d: the kernel makes an IPv4 connection, so it goes to the IPv4
  // listener, addressed the way this socket can reach it (::ffff:<proxy4>).
  int mapped = a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff);

  if (mapped) {
    if (kz_config.proxy4_port == 0)
      return 1;
    if (a3 == kz_config.proxy4_addr && nport == kz_config.proxy4_port)
      return 1;
  } else {
    if (kz_config.proxy6_port == 0)
      return 1;
    if (a0 == kz_config.proxy6_addr[0] && a1 == kz_config.proxy6_addr[1] &&
        a2 == kz_config.proxy6_addr[2] && a3 == kz_config.proxy6_addr[3] &&
        nport == kz_config.proxy6_port)
      return 1;
  }
  if (!wanted(bpf_ntohs(nport)))
    return 1;

  struct kz_redir_dst d = {};
  d.addr[0] = a0;
  d.addr[1] = a1;
  d.addr[2] = a2;
  d.addr[3] = a3;
  d.port = nport;
  d.family = KZ_AF_INET6;
  d.proxy_family = mapped ? KZ_AF_INET : KZ_AF_INET6;
  if (!remember(ctx, &d))
    return 1;

  if (mapped) {
    ctx->user_ip6[3] = kz_config.proxy4_addr;  // [0..2] already read ::ffff:
    ctx->user_port = kz_config.proxy4_port;
  } else {
    ctx->user_ip6[0] = kz_config.proxy6_addr[0];
    ctx->user_ip6[1] = kz_config.proxy6_addr[1];
    ctx->user_ip6[2] = kz_config.proxy6_addr[2];
    ctx->user_ip6[3] = kz_config.proxy6_addr[3];
    ctx->user_port = kz_config.proxy6_port;
  }
  return 1;
}

// TCP_CONNECT_CB runs in tcp_connect(), after the kernel picked the local address and
// port and before the SYN leaves, so the entry exists before the proxy can accept().
SEC("sockops")
int kz_sockops(struct bpf_sock_ops *skops)
{
  __u64 cookie;

  switch (skops->op) {
  case BPF_SOCK_OPS_TCP_CONNECT_CB: {
    cookie = bpf_get_socket_cookie(skops);
    struct kz_redir_dst *found = bpf_map_lookup_elem(&by_cookie, &cookie);
    if (!found)
      return 1;
    struct kz_redir_dst d = *found;
    struct kz_redir_client key = {};
    key.family = d.proxy_family;
    key.port = (__u16)skops->local_port;
    if (d.proxy_family == KZ_AF_INET) {
      // Also right for a v4-mapped connection on an AF_INET6 socket: the kernel keeps
      // the IPv4 source in the fields local_ip4 reads.
      key.addr[0] = skops->local_ip4;
    } else {
      key.addr[0] = skops->local_ip6[0];
      key.addr[1] = skops->local_ip6[1];
      key.addr[2] = skops->local_ip6[2];
      key.addr[3] = skops->local_ip6[3];
    }
    bpf_map_update_elem(&by_client, &key, &d, BPF_ANY);
    // Ask for state changes so that the cookie entry goes when the socket closes,
    // instead of waiting for LRU eviction.
    bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
    return 1;
  }
  case BPF_SOCK_OPS_STATE_CB:
    if (skops->args[1] == BPF_TCP_CLOSE) {
      cookie = bpf_get_socket_cookie(skops);
      bpf_map_delete_elem(&by_cookie, &cookie);
    }
    return 1;
  default:
    return 1;
  }
}

// The program's own view stays its own: getpeername() on a redirected socket answers
// with the address it connected to, not the proxy.
SEC("cgroup/getpeername4")
int kz_getpeername4(struct bpf_sock_addr *ctx)
{
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct kz_redir_dst *d = bpf_map_lookup_elem(&by_cookie, &cookie);
  if (d && d->family == KZ_AF_INET) {
    ctx->user_ip4 = d->addr[0];
    ctx->user_port = d->port;
  }
  return 1;
}

SEC("cgroup/getpeername6")
int kz_getpeername6(struct bpf_sock_addr *ctx)
{
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct kz_redir_dst *d = bpf_map_lookup_elem(&by_cookie, &cookie);
  if (d && d->family == KZ_AF_INET6) {
    ctx->user_ip6[0] = d->addr[0];
    ctx->user_ip6[1] = d->addr[1];
    ctx->user_ip6[2] = d->addr[2];
    ctx->user_ip6[3] = d->addr[3];
    ctx->user_port = d->port;
  }
  return 1;
}

static __always_inline int in_run_cgroup(void)
{
  return bpf_current_task_under_cgroup(&run_cgroup, 0) == 1;
}

// A member ran a new program: whatever was decided for the old one no longer holds.
// Userspace classifies the new one from the ring buffer; until then it is redirected.
//
// Raw tracepoints rather than "tp/sched/...": they need no tracefs mount, which these
// machines do not have. Not BTF-typed (tp_btf): those would make libbpf read the
// kernel's whole BTF at every load (see bpf/CMakeLists.txt).
SEC("raw_tp/sched_process_exec")
int kz_exec(struct bpf_raw_tracepoint_args *ctx)
{
  struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
  if (!in_run_cgroup())
    return 0;
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  bpf_map_delete_elem(&verdicts, &tgid);

  struct kz_exec_event *e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
  if (!e)
    return 0;  // buffer full: the process stays unclassified, i.e. redirected
  e->tgid = tgid;
  if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename)) < 0)
    e->filename[0] = '\0';
  bpf_ringbuf_submit(e, 0);
  return 0;
}

// When a process ends its verdict goes too, so that a later process reusing the pid
// starts unclassified (redirected) rather than inheriting a stale PASS.
SEC("raw_tp/sched_process_exit")
int kz_exit(struct bpf_raw_tracepoint_args *ctx)
{
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  if ((__u32)id != tgid || !in_run_cgroup())
    return 0;  // only the thread-group leader's exit ends the process's verdict
  bpf_map_delete_elem(&verdicts, &tgid);
  return 0;
}
