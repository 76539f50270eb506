// The run's sensors as one BPF object: the process tree (proctree.bpf.h) and the TLS tap
// (tlstap.bpf.h). One object because libbpf reads and parses the kernel's BTF
// (/sys/kernel/btf/vmlinux, several MiB in page-sized reads) once per object it loads,
// and the BTF tracepoints need it: two objects cost that twice on every `kz run`.
// The loader (launcher/sensors/sensor_object.cpp) attaches each part on its own.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// GPL-compatible: bpf_probe_read_kernel_str and bpf_probe_read_user are GPL-only.
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#include "proctree_shared.h"

// The run's live processes: kept by the process tree, read by the TLS tap's filter.
KZ_PT_MEMBERS_MAP;

#include "proctree.bpf.h"
#include "tlstap.bpf.h"
