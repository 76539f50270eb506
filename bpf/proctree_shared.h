/* Shared between bpf/proctree.bpf.c and launcher/sensors/process_sensor.cpp: the
 * process-tree sensor's map values and ring-buffer records. Plain C with fixed-width
 * kernel types so that the BPF target (vmlinux.h) and C++ (<linux/types.h>) lay the
 * structs out alike. */
#ifndef KZ_BPF_PROCTREE_SHARED_H
#define KZ_BPF_PROCTREE_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* A run's process count is bounded by this; a fork that finds the map full leaves the
 * child out of the run, which fails closed (the broker refuses it). */
#define KZ_PT_MAX_MEMBERS 65536
#define KZ_PT_RINGBUF_BYTES (1024 * 1024)
#define KZ_PT_FILENAME_MAX 256
#define KZ_PT_ARGV_MAX 256

/* Value of the members map (key: thread-group id as the initial PID namespace numbers
 * it). Userspace inserts the run's root; the fork tracepoint inserts its descendants;
 * the exit tracepoint deletes them, so a reused pid never inherits membership. */
struct kz_pt_member {
  __u32 parent;   /* tgid of the process that forked it (the launcher for a root) */
  __u32 execs;    /* exec events sent for it so far: userspace waits for its table to
                     catch up with this before it answers a lineage question */
};

#ifdef __bpf__
/* The members map, declared alike in every program that filters by the run's processes:
 * the loaders hand one map's fd to the others (bpf_map__reuse_fd). */
#define KZ_PT_MEMBERS_MAP                          \
  struct {                                         \
    __uint(type, BPF_MAP_TYPE_HASH);               \
    __uint(max_entries, KZ_PT_MAX_MEMBERS);        \
    __uint(map_flags, BPF_F_NO_PREALLOC);          \
    __type(key, __u32);                            \
    __type(value, struct kz_pt_member);            \
  } members SEC(".maps")
#endif

/* Exec holds (the TLS tap's, tls_tap.cpp): a member that execs a program listed in the
 * hold_images map (a program with its own TLS library, which the tap probes per process)
 * is stopped (SIGSTOP) at its exec, before its first instruction, and its tgid goes into
 * the held map with the time; userspace continues it (SIGCONT) once the probes are in.
 * The key is the file as the kernel numbers it: s_dev (MAJOR << 20 | MINOR) and inode. */
#define KZ_PT_MAX_HOLD_IMAGES 1024
#define KZ_PT_MAX_HELD 4096
struct kz_pt_image {
  __u64 dev;
  __u64 ino;
};

#define KZ_PT_EVENT_FORK 1
#define KZ_PT_EVENT_EXEC 2
#define KZ_PT_EVENT_EXIT 3

/* events ring-buffer record. filename and argv are only filled for EXEC. */
struct kz_pt_event {
  __u64 ts;        /* bpf_ktime_get_boot_ns() */
  __u32 type;      /* KZ_PT_EVENT_* */
  __u32 tgid;
  __u32 parent;    /* FORK: the forking process; otherwise the member's recorded parent */
  __u32 exec_seq;  /* EXEC: 1 for the first exec of this process, 2 for the next, ... */
  __u32 argv_len;  /* EXEC: bytes of argv (NUL-separated arguments), at most KZ_PT_ARGV_MAX */
  __s32 exit_code; /* EXIT: the wait status the parent will see */
  char filename[KZ_PT_FILENAME_MAX]; /* EXEC: as passed to execve, NUL-terminated, may be cut */
  char argv[KZ_PT_ARGV_MAX];         /* EXEC: not NUL-terminated; argv_len says how much */
};

#endif /* KZ_BPF_PROCTREE_SHARED_H */
