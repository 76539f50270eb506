// The process-tree sensor: the exact set of processes descended from a run's root,
// kept by the kernel as they fork and exit, with what each one executes.
//
// The broker asks the members map directly (a synchronous lookup, no /proc walk that a
// fast fork/exec/exit could outrun); userspace keeps the lineage (which program forked
// which, including processes long gone) from the events ring buffer.
//
// Maps (see proctree_shared.h for the structs):
//   members      hash  u32 tgid -> kz_pt_member   the run's live processes
//   events       ring buffer of kz_pt_event      fork / exec / exit of members
//   hold_images  hash  kz_pt_image -> u32        programs stopped at exec until probed (the tap's)
//   held         hash  u32 tgid -> u64 boot ns   members stopped at exec, not yet continued
//
// Raw tracepoints (raw_tp): attached by name, no tracefs mount (which these machines do
// not have) and no kernel BTF at attach; fields are read with CO-RE (BPF_CORE_READ), so
// the loader can relocate against a minimal BTF made at build time (sensor_object.cpp).
// Part of the one sensors object (sensors.bpf.c), which declares the members map.
#include "proctree_shared.h"

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, KZ_PT_RINGBUF_BYTES);
} events SEC(".maps");

// Exec holds (proctree_shared.h): the programs to hold at exec, and who is held since when.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KZ_PT_MAX_HOLD_IMAGES);
  __type(key, struct kz_pt_image);
  __type(value, __u32);
} hold_images SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KZ_PT_MAX_HELD);
  __type(key, __u32);
  __type(value, __u64);
} held SEC(".maps");

#define KZ_PT_SIGSTOP 19

// The member `tgid` has just exec'd bprm's file: stop it there when the tap wants probes
// in that program first. Only when its exec event is in the ring (the caller reserved
// it), so userspace is sure to hear of it and continue it.
static __always_inline void kz_pt_maybe_hold(__u32 tgid, struct linux_binprm *bprm, __u64 now)
{
  struct kz_pt_image img = {};
  img.dev = BPF_CORE_READ(bprm, file, f_inode, i_sb, s_dev);
  img.ino = BPF_CORE_READ(bprm, file, f_inode, i_ino);
  if (!bpf_map_lookup_elem(&hold_images, &img))
    return;
  if (bpf_map_update_elem(&held, &tgid, &now, BPF_ANY) != 0)
    return;
  // Delivered on the way back to user mode: the new image runs nothing before it.
  if (bpf_send_signal(KZ_PT_SIGSTOP) != 0)
    bpf_map_delete_elem(&held, &tgid);
}

// A new process (not a thread: a thread shares its creator's tgid and is covered by it)
// forked by a member is a member. It is added here, in the parent's fork, before the
// child can run a single instruction, so no connect or exec of the child can precede it.
SEC("raw_tp/sched_process_fork")
int kz_pt_fork(struct bpf_raw_tracepoint_args *ctx)
{
  struct task_struct *parent = (struct task_struct *)ctx->args[0];
  struct task_struct *child = (struct task_struct *)ctx->args[1];
  __u32 ptgid = BPF_CORE_READ(parent, tgid);
  if (!bpf_map_lookup_elem(&members, &ptgid))
    return 0;
  __u32 ctgid = BPF_CORE_READ(child, tgid);
  if (BPF_CORE_READ(child, pid) != ctgid)
    return 0;
  struct kz_pt_member m = {.parent = ptgid, .execs = 0};
  if (bpf_map_update_elem(&members, &ctgid, &m, BPF_ANY) != 0)
    return 0;  // map full: the child stays outside the run (the broker refuses it)

  struct kz_pt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e)
    return 0;  // buffer full: userspace falls back to the map's parent link
  e->ts = bpf_ktime_get_boot_ns();
  e->type = KZ_PT_EVENT_FORK;
  e->tgid = ctgid;
  e->parent = ptgid;
  e->exec_seq = 0;
  e->argv_len = 0;
  e->exit_code = 0;
  e->filename[0] = '\0';
  bpf_ringbuf_submit(e, 0);
  return 0;
}

// A member ran a program. At this tracepoint the new image is set up: mm->arg_start..
// arg_end are the new argv strings on the new stack (environment strings follow them,
// which is why the copy never reads past arg_end: the environment may hold secrets).
SEC("raw_tp/sched_process_exec")
int kz_pt_exec(struct bpf_raw_tracepoint_args *ctx)
{
  struct task_struct *p = (struct task_struct *)ctx->args[0];
  struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
  __u32 tgid = BPF_CORE_READ(p, tgid);
  struct kz_pt_member *m = bpf_map_lookup_elem(&members, &tgid);
  if (!m)
    return 0;
  // A plain increment: exec has made the process single-threaded (de_thread), so no
  // other exec of the same tgid can run concurrently.
  __u32 seq = m->execs + 1;
  m->execs = seq;

  struct kz_pt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e)
    return 0;  // userspace sees execs > what it received and stops waiting after a while
  e->ts = bpf_ktime_get_boot_ns();
  e->type = KZ_PT_EVENT_EXEC;
  e->tgid = tgid;
  e->parent = m->parent;
  e->exec_seq = seq;
  e->exit_code = 0;
  if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename)) < 0)
    e->filename[0] = '\0';

  struct mm_struct *mm = BPF_CORE_READ(p, mm);
  __u64 start = mm ? BPF_CORE_READ(mm, arg_start) : 0;
  __u64 end = mm ? BPF_CORE_READ(mm, arg_end) : 0;
  __u32 len = 0;
  if (start != 0 && end > start) {
    __u64 n = end - start;
    len = n > KZ_PT_ARGV_MAX ? KZ_PT_ARGV_MAX : (__u32)n;
  }
  // The explicit bound on len keeps the verifier's range for the copy within argv.
  if (len > 0 && len <= KZ_PT_ARGV_MAX) {
    if (bpf_probe_read_user(e->argv, len, (const void *)start) != 0)
      len = 0;
  } else {
    len = 0;
  }
  e->argv_len = len;
  kz_pt_maybe_hold(tgid, bprm, e->ts);
  bpf_ringbuf_submit(e, 0);
  return 0;
}

// The last thread of a member ended: the process is gone. Deleting it here means a pid
// the kernel hands out again later is not a member unless a member forked it.
// signal->live is the group's live-thread count, already decremented for this thread
// (kernel/exit.c decrements it before the tracepoint), so 0 means "the whole group".
SEC("raw_tp/sched_process_exit")
int kz_pt_exit(struct bpf_raw_tracepoint_args *ctx)
{
  struct task_struct *p = (struct task_struct *)ctx->args[0];
  if (BPF_CORE_READ(p, signal, live.counter) != 0)
    return 0;
  __u32 tgid = BPF_CORE_READ(p, tgid);
  struct kz_pt_member *m = bpf_map_lookup_elem(&members, &tgid);
  if (!m)
    return 0;
  __u32 parent = m->parent;
  bpf_map_delete_elem(&members, &tgid);
  bpf_map_delete_elem(&held, &tgid);   // gone while held: nothing to continue

  struct kz_pt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e)
    return 0;
  e->ts = bpf_ktime_get_boot_ns();
  e->type = KZ_PT_EVENT_EXIT;
  e->tgid = tgid;
  e->parent = parent;
  e->exec_seq = 0;
  e->argv_len = 0;
  e->exit_code = BPF_CORE_READ(p, exit_code);
  e->filename[0] = '\0';
  bpf_ringbuf_submit(e, 0);
  return 0;
}
