/* Shared between bpf/redirect.bpf.c and launcher/redirect/ebpf_redirector.cpp: map keys,
 * map values, ring-buffer records and load-time configuration of the blind-mode
 * redirector. Plain C with fixed-width kernel types so that both the BPF target (which
 * gets them from vmlinux.h) and C++ (from <linux/types.h>) lay the structs out alike.
 * Addresses and ports inside these structs are in network byte order unless a field
 * says otherwise. */
#ifndef KZ_BPF_REDIRECT_SHARED_H
#define KZ_BPF_REDIRECT_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Socket constants with our own names: vmlinux.h has no AF_* macros, and the C++ side
 * must not clash with <sys/socket.h>. The values are the Linux ABI. */
#define KZ_AF_INET 2
#define KZ_AF_INET6 10
#define KZ_SOCK_STREAM 1
#define KZ_IPPROTO_TCP 6

/* Map sizes. LRU maps drop their oldest entries when full, which only ever costs a
 * proxy lookup (a connection whose original destination was evicted before the proxy
 * asked) or an extra classification (an evicted verdict means "redirect"). */
#define KZ_REDIR_MAX_PORTS 256
#define KZ_REDIR_MAX_PROCS 65536
#define KZ_REDIR_MAX_CONNS 65536
#define KZ_REDIR_RINGBUF_BYTES (256 * 1024)
#define KZ_REDIR_FILENAME_MAX 256

/* verdicts map values (key: thread-group id). No entry means "not classified yet",
 * which the connect hooks treat like REDIRECT. */
#define KZ_VERDICT_PASS 1     /* the shim serves this program: leave its connects alone */
#define KZ_VERDICT_REDIRECT 2 /* the fallback proxy serves it */

/* Where a redirected connection was going (value of by_cookie and by_client). */
struct kz_redir_dst {
  __u32 addr[4];        /* AF_INET: addr[0]; AF_INET6: all four (v4-mapped stays v6) */
  __u32 tgid;           /* thread-group id of the process that called connect() */
  __u16 port;           /* destination port, network order */
  __u16 family;         /* KZ_AF_INET / KZ_AF_INET6: the address the program asked for */
  __u16 proxy_family;   /* the IP version the proxy sees the client with: a v4-mapped
                           destination is sent to ::ffff:<proxy4>, i.e. over IPv4 */
  __u16 pad;
};

/* Key of by_client: the client end of a redirected connection as the proxy's accept()
 * reports it. The local address is part of the key because a program may bind its
 * socket to another loopback address; the port alone is unique only per address. */
struct kz_redir_client {
  __u32 addr[4];        /* KZ_AF_INET: addr[0], rest 0 */
  __u16 family;         /* KZ_AF_INET / KZ_AF_INET6 (never v4-mapped: those are AF_INET) */
  __u16 port;           /* host order (sock_ops local_port is host order) */
};

/* exec_events ring buffer record: a process in the run cgroup ran a new program. */
struct kz_exec_event {
  __u32 tgid;
  char filename[KZ_REDIR_FILENAME_MAX]; /* as passed to execve, NUL-terminated, may be cut */
};

/* Load-time configuration (.rodata, set before the object is loaded). */
struct kz_redir_config {
  __u32 proxy4_addr;     /* network order */
  __u32 proxy6_addr[4];  /* network order */
  __u16 proxy4_port;     /* network order; 0: no IPv4 listener, IPv4 is left alone */
  __u16 proxy6_port;     /* network order; 0: native IPv6 destinations are left alone */
  __u8 all_programs;     /* --blind=proxy: verdicts are ignored */
  __u8 pad[3];
};

#endif /* KZ_BPF_REDIRECT_SHARED_H */
