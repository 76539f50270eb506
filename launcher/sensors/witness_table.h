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
// false (blind mode: the agent holds tokens) the values are not in it. With `tokens`
// (--blind=proxy, where no broker sees the agent's writes) each token's forms are, as
// secret index | kTokenSecret; a shim-mode run leaves its tokens to the broker. Neither:
// the witness only counts writes. `refuse`: --on-leak=kill.
std::unique_ptr<preload::witness::Table> build_witness_table(const std::vector<WatchedSecret>& secrets, bool values,
                                                             bool refuse, bool tokens = false);

}  // namespace kz
