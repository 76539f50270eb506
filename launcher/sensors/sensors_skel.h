// The sensors' libbpf skeleton (bpf/sensors.bpf.c), for the files that attach its
// programs. Only sensor_object.cpp opens it.
#pragma once

#if KZ_HAVE_BPF
#include <bpf/libbpf.h>

#include "proctree_shared.h"
#include "tlstap_shared.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "sensors.skel.h"
#pragma GCC diagnostic pop

namespace kz {
// BPF_TRACE_UPROBE_MULTI (Linux 6.6), which libbpf 1.1 (Debian 12) predates.
inline constexpr int kBpfTraceUprobeMulti = 48;
}  // namespace kz
#endif
