// The check `kz run --blind` makes before it resolves anything: are the project's
// bindings the ones the user trusted? The first blind run of a project trusts on first
// use (the pins are recorded); a later run whose bindings widened is refused until the
// user runs `kz trust`; narrowing is accepted (the recorded pins stay as they were).
#pragma once

#include "kz/result.h"
#include "trust/pins_diff.h"
#include "trust/project_pins.h"
#include "trust/trust_store.h"

namespace kz {

enum class TrustOutcome {
  FirstUse,    // no record: the current pins were recorded now
  Unchanged,   // as trusted
  Narrowed,    // only narrowing changes: the run may go on
  Widened,     // the run must not start
};

struct TrustCheck {
  TrustOutcome outcome = TrustOutcome::Unchanged;
  ProjectPins now;     // the config as it is
  PinsDiff diff;       // trusted → now (empty for FirstUse and Unchanged)
};

// Errors: the store cannot be read or written, or its record is damaged (the run must
// not start: that is not "never trusted").
Result<TrustCheck> check_project_trust(const Config& cfg, const TrustStore& store);

// The message for a refused run: the diff and what to do.
std::string widened_message(const TrustCheck& c);

}  // namespace kz
