// Rotation (resolve/refresher.h): a new value joins the masks of a run while its streams
// are open; the old values stay masked, and a value that straddles the switch is caught.
#include <gtest/gtest.h>

#include "masking/masker.h"

namespace kz {
namespace {

const std::string R = "<concealed by kz>";
const std::string kOld = "old-value-0123456789";
const std::string kNew = "new-value-abcdefghij";

TEST(MaskerRotation, AddingKeepsTheOldValuesAndTheOptions) {
  MaskerOptions opts;
  opts.replacement = "[x]";
  auto base = MaskPatterns::build({kOld}, opts);
  auto more = base->adding({kNew});
  StreamMasker m(more);
  std::string out;
  m.feed(kOld + " " + kNew + " plain", out);
  m.flush(out);
  EXPECT_EQ(out, "[x] [x] plain");
  EXPECT_GT(more->pattern_count(), base->pattern_count());
}

TEST(MaskerRotation, SwitchingMidStreamCatchesAValueThatStraddlesIt) {
  auto base = MaskPatterns::build({kOld});
  StreamMasker m(base);
  std::string out;
  // A prefix of the old value is held back when the patterns change (a write cut there).
  m.feed("a " + kOld.substr(0, 7), out);
  m.set_patterns(base->adding({kNew}), out);
  m.feed(kOld.substr(7) + " b " + kNew.substr(0, 5), out);
  m.feed(kNew.substr(5) + " c", out);
  m.flush(out);
  EXPECT_EQ(out, "a " + R + " b " + R + " c");
}

}  // namespace
}  // namespace kz
