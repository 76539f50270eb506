#include "sensors/sensor_object.h"

#include <cerrno>

#include "core/bpf_support.h"
#include "sensors/process_sensor.h"

#if KZ_HAVE_BPF
#include <bpf/libbpf.h>

#include "redirect/min_btf.h"
#include "sensors/sensors_skel.h"
#endif

namespace kz {

#if !KZ_HAVE_BPF

SensorObject::~SensorObject() = default;

Result<std::shared_ptr<SensorObject>> SensorObject::load(bool) {
  return make_error(ErrorKind::Denied, process_sensor_unavailable_reason());
}

#else

SensorObject::~SensorObject() {
  if (skel_ != nullptr) kz_sensors__destroy(skel_);
}

Result<std::shared_ptr<SensorObject>> SensorObject::load(bool stop_on_write) {
  if (auto why = process_sensor_unavailable_reason(); !why.empty()) return make_error(ErrorKind::Denied, why);
  std::shared_ptr<SensorObject> o(new SensorObject);
  o->stop_on_write_ = stop_on_write;
  const MinBtf btf = MinBtf::open();
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  opts.btf_custom_path = btf.path();
  for (;;) {
    LibbpfLogCapture log;
    o->skel_ = kz_sensors__open_opts(&opts);
    if (o->skel_ == nullptr) return bpf_load_error("cannot open the sensors' BPF object", errno, &log);
    o->skel_->rodata->kz_stop_on_write = stop_on_write ? 1 : 0;
    if (!o->send_hook_) bpf_program__set_autoload(o->skel_->progs.kz_tcp_sendmsg, false);
    // libbpf 1.1 has no section name for uprobe_multi programs: the tap links the
    // program with BPF_LINK_CREATE itself (tls_tap.cpp), so it is loaded for that type.
    bpf_program__set_expected_attach_type(o->skel_->progs.kz_tap, static_cast<bpf_attach_type>(kBpfTraceUprobeMulti));
    const int err = kz_sensors__load(o->skel_);
    if (err == 0) return o;
    kz_sensors__destroy(o->skel_);
    o->skel_ = nullptr;
    if (!o->send_hook_) return bpf_load_error("cannot load the sensors' BPF programs", err, &log);
    o->send_hook_ = false;   // retry without the send hook (a kernel without sock_send_length)
  }
}

#endif  // KZ_HAVE_BPF

}  // namespace kz
