// The one BPF object behind a run's sensors (bpf/sensors.bpf.c): the process tree's
// tracepoints and the TLS tap's uprobe program share it, and its members map. Loaded
// once per run, because libbpf reads and parses the kernel's BTF once per object (tens of
// milliseconds here); each sensor then attaches its own programs from it.
#pragma once

#include <memory>

#include "kz/result.h"

struct kz_sensors;   // the skeleton (sensors.skel.h), for the sensors' own files

namespace kz {

class SensorObject {
 public:
  // Verifies and loads every program. `stop_on_write` (--on-leak=kill) is fixed here: it
  // is a constant of the tap's program. A kernel without the tracepoint the tap's send
  // hook uses gets the rest without it (send_hook() false).
  static Result<std::shared_ptr<SensorObject>> load(bool stop_on_write);
  ~SensorObject();
  SensorObject(const SensorObject&) = delete;
  SensorObject& operator=(const SensorObject&) = delete;

  kz_sensors* skel() const { return skel_; }
  bool send_hook() const { return send_hook_; }
  bool stop_on_write() const { return stop_on_write_; }

 private:
  SensorObject() = default;
  kz_sensors* skel_ = nullptr;
  bool send_hook_ = true;
  bool stop_on_write_ = false;
};

}  // namespace kz
