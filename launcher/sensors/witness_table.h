// The fingerprint table the shim's witness scans with (kz/preload/witness_wire.h): for
// one window of each form of each watched value (the leak detector's windows and
// forms), its keyed MAC and its pieces' filter bits, under keys drawn for the run.
#pragma once

#include <memory>
#include <vector>

#include "kz/preload/witness_wire.h"
#include "sensors/leak_detector.h"

namespace kz {

// `secrets` indexes match the leak detector's built from the same list. With `values`
// false (blind mode: the agent holds tokens, which the broker judges) the table only
// asks the witness to count writes. `refuse`: --on-leak=kill.
std::unique_ptr<preload::witness::Table> build_witness_table(const std::vector<WatchedSecret>& secrets, bool values,
                                                             bool refuse);

}  // namespace kz
