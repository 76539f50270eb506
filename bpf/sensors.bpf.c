// The run's sensors as one BPF object: the process tree (proctree.bpf.h) and the TLS tap
// (tlstap.bpf.h). libbpf reads and parses a BTF once per object it loads; one object
// loads once. The programs are raw tracepoints and uprobes reading fields with CO-RE, so
// that BTF is a minimal one cut at build time (bpf/CMakeLists.txt), not the kernel's
// several MiB (/sys/kernel/btf/vmlinux, read in page-sized pieces): that read and parse
// was most of a run's start-up. The loader (launcher/sensors/sensor_object.cpp)
// attaches each part on its own.
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
