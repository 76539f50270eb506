// Output masking: every resolved secret value (and the encodings a program is likely to
// print it in) is replaced in the child's stdout/stderr by a fixed replacement text.
//
// MaskPatterns is built once per run from the values; StreamMasker is one per output
// stream and is fed the bytes as they arrive. It holds back at most
// max_pattern_len()-1 bytes that could still be the start of a secret; the caller
// flushes them after a short idle time and at EOF.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kz {

struct MaskerOptions {
  std::string replacement = "<concealed by kz>";
  // Values shorter than this are not masked (masking a 2-byte value would shred all
  // output); the caller warns about them by name.
  std::size_t min_secret_len = 4;
};

// A value whose sight in the output is reported (a canary, secrets/canary.h): matched in
// the same forms as a masked value; replaced like one when `mask`, else passed through
// unchanged (a blind run's canary token reads like every other token there).
struct Tripwire {
  std::string_view value;
  bool mask = true;
};

class MaskPatterns {
 public:
  static std::shared_ptr<const MaskPatterns> build(const std::vector<std::string_view>& values,
                                                   const MaskerOptions& opts = {},
                                                   const std::vector<Tripwire>& tripwires = {});
  ~MaskPatterns();
  MaskPatterns(const MaskPatterns&) = delete;
  MaskPatterns& operator=(const MaskPatterns&) = delete;

  // These patterns and those of `values` (rotation: a new value is masked, and the old
  // ones still are); the same options and tripwires, in the same order.
  std::shared_ptr<const MaskPatterns> adding(const std::vector<std::string_view>& values) const;

  std::size_t pattern_count() const;
  std::size_t max_pattern_len() const;
  const std::string& replacement() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit MaskPatterns(std::unique_ptr<Impl> impl);
  // Sorts and dedupes impl's patterns and builds its automaton.
  static std::shared_ptr<const MaskPatterns> finish(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class StreamMasker {
 public:
  // `on_tripwire(i)`: tripwires[i] (as given to build) was seen in this stream; called
  // from feed/flush, once per sight.
  explicit StreamMasker(std::shared_ptr<const MaskPatterns> patterns,
                        std::function<void(std::size_t)> on_tripwire = {});
  ~StreamMasker();   // wipes held-back bytes
  StreamMasker(const StreamMasker&) = delete;
  StreamMasker& operator=(const StreamMasker&) = delete;

  // Append to `out` the masked bytes that can no longer be part of a match.
  void feed(std::string_view in, std::string& out);
  // Append everything held back (masking any complete match in it). Call at EOF and
  // after an idle time.
  void flush(std::string& out);
  bool has_pending() const;
  // Masks with `patterns` from now on: the bytes held back are scanned again with them
  // (a match that began before the change is still found), and what can no longer be
  // part of a match is appended to `out`.
  void set_patterns(std::shared_ptr<const MaskPatterns> patterns, std::string& out);

 private:
  struct State;
  std::unique_ptr<State> st_;
};

}  // namespace kz
