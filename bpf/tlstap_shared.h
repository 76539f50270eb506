/* Shared between bpf/tlstap.bpf.c and launcher/sensors/tls_tap.cpp: the TLS plaintext
 * tap's map values and ring-buffer records. Plain C with fixed-width kernel types so the
 * BPF target (vmlinux.h) and C++ (<linux/types.h>) lay the structs out alike. */
#ifndef KZ_BPF_TLSTAP_SHARED_H
#define KZ_BPF_TLSTAP_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Bytes of each write copied out: a request's head and the start of its body. A power
 * of two, so that the verifier can bound the copy with a mask. */
#define KZ_TAP_CAPTURE 16384
#define KZ_TAP_RINGBUF_BYTES (8 * 1024 * 1024)
#define KZ_TAP_HOST_MAX 256
#define KZ_TAP_MAX_CONNS 16384

/* The functions probed, as the attach cookie of each probe: one program serves them
 * all, so that one uprobe_multi link per library covers every probe (a link's removal
 * then waits for one RCU grace period, not one per probe). The first three are the
 * writes, reported as kz_tap_event.fn. */
#define KZ_TAP_FN_SSL_WRITE 1
#define KZ_TAP_FN_SSL_WRITE_EX 2
#define KZ_TAP_FN_GNUTLS_RECORD_SEND 3
#define KZ_TAP_FN_SSL_CTRL 4
#define KZ_TAP_FN_SSL_SET_FD 5
#define KZ_TAP_FN_SSL_FREE 6
#define KZ_TAP_FN_GNUTLS_SERVER_NAME_SET 7
#define KZ_TAP_FN_GNUTLS_SET_INT2 8
#define KZ_TAP_FN_GNUTLS_DEINIT 9
#define KZ_TAP_FN_HANDSHAKE 10

/* Key of the conns map: a TLS connection object (SSL* or gnutls_session_t) of one
 * process. The pointer alone is not enough: two processes can have the same address. */
struct kz_tap_conn_key {
  __u64 conn;
  __u32 tgid;
  __u32 pad;
};

/* What the library was told about a connection before it wrote: the server name
 * (SSL_set_tlsext_host_name / gnutls_server_name_set) and the socket (SSL_set_fd /
 * gnutls_transport_set_int2); or, for a program that feeds the library through its own
 * BIO, the peer of the socket its handshake first sent on. */
struct kz_tap_conn {
  __s32 fd;             /* -1 when unknown (a BIO of the program's own, as curl and node use) */
  __u16 peer_family;    /* from the first TCP send of its handshake; 0 when not seen */
  __u16 peer_port;      /* host byte order */
  __u8 peer_addr[16];
  char sni[KZ_TAP_HOST_MAX];
};

/* taps ring-buffer record: one plaintext write of a member process. */
struct kz_tap_event {
  __u64 ts;            /* bpf_ktime_get_boot_ns() */
  __u64 conn;          /* SSL* / gnutls_session_t */
  __u64 len;           /* bytes the program asked to write */
  __u32 tgid;
  __u32 tid;
  __u32 fn;            /* KZ_TAP_FN_* */
  __u32 captured;      /* bytes in data: min(len, KZ_TAP_CAPTURE), 0 when unreadable */
  __u16 peer_family;   /* AF_INET / AF_INET6 from the socket, 0 when unknown */
  __u16 peer_port;     /* host byte order */
  __u8 peer_addr[16];  /* IPv4 in the first 4 bytes */
  char sni[KZ_TAP_HOST_MAX];
  char data[KZ_TAP_CAPTURE];
};

/* Records in the ring are the header and the `captured` bytes of data only. */
#define KZ_TAP_EVENT_HEADER (sizeof(struct kz_tap_event) - KZ_TAP_CAPTURE)

#endif /* KZ_BPF_TLSTAP_SHARED_H */
