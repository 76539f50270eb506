#include "masking/masker.h"

#include <algorithm>
#include <limits>

#include "kz/wipe.h"
#include "masking/aho_corasick.h"
#include "masking/encodings.h"

namespace kz {

struct MaskPatterns::Impl {
  std::vector<std::string> patterns;
  std::string replacement;
  std::size_t min_len = 1;
  std::size_t max_len = 0;
  std::unique_ptr<AhoCorasick> ac;
  struct Trip {
    std::string pattern;   // one form of a tripwire value (a decoy, not a secret)
    std::size_t index;
    bool mask;
  };
  // Looked up only when a match is committed (rare), by comparing views: the matched
  // bytes may be a real value, which must not be copied into a lookup key.
  std::vector<Trip> trips;
  const Trip* trip_of(std::string_view matched) const {
    for (const auto& t : trips)
      if (t.pattern == matched) return &t;
    return nullptr;
  }
  ~Impl() {
    for (auto& p : patterns) wipe(p);
  }
};

MaskPatterns::MaskPatterns(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MaskPatterns::~MaskPatterns() = default;

std::shared_ptr<const MaskPatterns> MaskPatterns::build(const std::vector<std::string_view>& values,
                                                        const MaskerOptions& opts,
                                                        const std::vector<Tripwire>& tripwires) {
  auto impl = std::make_unique<Impl>();
  impl->replacement = opts.replacement;
  const std::size_t min_len = std::max<std::size_t>(opts.min_secret_len, 1);
  impl->min_len = min_len;
  for (auto v : values) {
    if (v.size() < min_len) continue;
    for (auto& p : mask_variants(v, min_len)) impl->patterns.push_back(std::move(p));
  }
  for (std::size_t i = 0; i < tripwires.size(); ++i) {
    if (tripwires[i].value.size() < min_len) continue;
    for (auto& p : mask_variants(tripwires[i].value, min_len)) {
      impl->trips.push_back(Impl::Trip{p, i, tripwires[i].mask});
      impl->patterns.push_back(std::move(p));
    }
  }
  return finish(std::move(impl));
}

std::shared_ptr<const MaskPatterns> MaskPatterns::adding(const std::vector<std::string_view>& values) const {
  auto impl = std::make_unique<Impl>();
  impl->replacement = impl_->replacement;
  impl->min_len = impl_->min_len;
  impl->patterns = impl_->patterns;
  impl->trips = impl_->trips;
  for (auto v : values) {
    if (v.size() < impl->min_len) continue;
    for (auto& p : mask_variants(v, impl->min_len)) impl->patterns.push_back(std::move(p));
  }
  return finish(std::move(impl));
}

std::shared_ptr<const MaskPatterns> MaskPatterns::finish(std::unique_ptr<Impl> impl) {
  std::sort(impl->patterns.begin(), impl->patterns.end());
  auto last = std::unique(impl->patterns.begin(), impl->patterns.end());
  for (auto it = last; it != impl->patterns.end(); ++it) wipe(*it);
  impl->patterns.erase(last, impl->patterns.end());
  for (const auto& p : impl->patterns) impl->max_len = std::max(impl->max_len, p.size());
  impl->ac = std::make_unique<AhoCorasick>(impl->patterns);
  return std::shared_ptr<const MaskPatterns>(new MaskPatterns(std::move(impl)));
}

std::size_t MaskPatterns::pattern_count() const { return impl_->patterns.size(); }
std::size_t MaskPatterns::max_pattern_len() const { return impl_->max_len; }
const std::string& MaskPatterns::replacement() const { return impl_->replacement; }

// Streaming leftmost-longest matching. `pending` holds bytes not yet emitted; the
// automaton has consumed pending[emitted, scanned). A candidate match is committed once
// no match that starts at or before it can still appear: the automaton's depth says
// how far back a match in progress may start.
struct StreamMasker::State {
  std::shared_ptr<const MaskPatterns> patterns;
  const AhoCorasick* ac = nullptr;
  std::string pending;
  std::size_t emitted = 0;     // pending[0, emitted) has been written out
  std::size_t scanned = 0;     // automaton position in pending
  std::int32_t state = AhoCorasick::kRoot;
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::size_t best_start = kNone, best_end = 0;

  std::function<void(std::size_t)> on_tripwire;

  void commit(std::string& out) {
    out.append(pending, emitted, best_start - emitted);
    const auto* trip = patterns->impl().trip_of(std::string_view(pending).substr(best_start, best_end - best_start));
    if (trip != nullptr && !trip->mask) out.append(pending, best_start, best_end - best_start);
    else out += patterns->replacement();
    if (trip != nullptr && on_tripwire) on_tripwire(trip->index);
    emitted = best_end;
    scanned = best_end;   // rescan what followed the match from the root
    state = AhoCorasick::kRoot;
    best_start = kNone;
  }

  void scan(std::string& out) {
    const auto* data = reinterpret_cast<const unsigned char*>(pending.data());
    const std::size_t n = pending.size();
    while (scanned < n) {
      state = ac->next(state, data[scanned++]);
      const std::uint32_t m = ac->match_len(state);
      if (m != 0) {
        const std::size_t start = scanned - m;
        if (best_start == kNone || start < best_start || (start == best_start && scanned > best_end)) {
          best_start = start;
          best_end = scanned;
        }
      }
      if (best_start != kNone && scanned - ac->depth(state) > best_start) commit(out);
    }
  }

  // Drop what has been emitted or can no longer start a match.
  void emit_safe(std::string& out) {
    std::size_t safe = scanned - ac->depth(state);
    if (best_start != kNone) safe = std::min(safe, best_start);
    if (safe > emitted) {
      out.append(pending, emitted, safe - emitted);
      emitted = safe;
    }
    if (emitted == 0) return;
    wipe(pending.data(), emitted);
    pending.erase(0, emitted);
    scanned -= emitted;
    if (best_start != kNone) {
      best_start -= emitted;
      best_end -= emitted;
    }
    emitted = 0;
  }
};

StreamMasker::StreamMasker(std::shared_ptr<const MaskPatterns> patterns, std::function<void(std::size_t)> on_tripwire)
    : st_(std::make_unique<State>()) {
  st_->on_tripwire = std::move(on_tripwire);
  st_->ac = patterns->impl().ac.get();
  st_->patterns = std::move(patterns);
}

StreamMasker::~StreamMasker() { wipe(st_->pending); }

void StreamMasker::feed(std::string_view in, std::string& out) {
  if (st_->patterns->pattern_count() == 0) {
    out.append(in);
    return;
  }
  st_->pending.append(in);
  st_->scan(out);
  st_->emit_safe(out);
}

void StreamMasker::flush(std::string& out) {
  // No more bytes are coming for now: the best candidate is final, and what follows it
  // is scanned again for further matches.
  while (st_->best_start != State::kNone) {
    st_->commit(out);
    st_->scan(out);
  }
  out.append(st_->pending, st_->emitted, std::string::npos);
  wipe(st_->pending);
  st_->emitted = st_->scanned = 0;
  st_->state = AhoCorasick::kRoot;
}

bool StreamMasker::has_pending() const { return !st_->pending.empty(); }

void StreamMasker::set_patterns(std::shared_ptr<const MaskPatterns> patterns, std::string& out) {
  std::string held;
  held.swap(st_->pending);   // emit_safe left nothing emitted in it
  st_->emitted = st_->scanned = 0;
  st_->state = AhoCorasick::kRoot;
  st_->best_start = State::kNone;
  st_->ac = patterns->impl().ac.get();
  st_->patterns = std::move(patterns);
  feed(held, out);
  wipe(held);
}

}  // namespace kz
