#include "trust/trust_check.h"

namespace kz {

Result<TrustCheck> check_project_trust(const Config& cfg, const TrustStore& store) {
  TrustCheck c;
  c.now = pins_of(cfg);
  auto trusted = store.load(cfg.path);
  if (!trusted) return trusted.take_error();
  if (!trusted->has_value()) {
    if (auto st = store.save(c.now); !st) return st.take_error();
    c.outcome = TrustOutcome::FirstUse;
    return c;
  }
  c.diff = diff_pins(**trusted, c.now);
  c.outcome = c.diff.empty() ? TrustOutcome::Unchanged : c.diff.widens() ? TrustOutcome::Widened : TrustOutcome::Narrowed;
  return c;
}

std::string widened_message(const TrustCheck& c) {
  return "the bindings in " + c.now.config + " changed since you trusted them; a value could now go where it "
         "could not before:\n" + c.diff.format() +
         "Nothing was started. If you made these changes, run `kz trust` in this project to review and record "
         "them; if you did not (an agent can edit files in its workspace), undo them.";
}

}  // namespace kz
