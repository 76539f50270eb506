// A byte-level Aho-Corasick automaton with a dense transition table over byte classes
// (only bytes that occur in some pattern get their own class), so matching costs one
// table lookup per input byte. The tables are secret-derived: wiped on destruction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kz {

class AhoCorasick {
 public:
  explicit AhoCorasick(const std::vector<std::string>& patterns);
  ~AhoCorasick();
  AhoCorasick(const AhoCorasick&) = delete;
  AhoCorasick& operator=(const AhoCorasick&) = delete;

  static constexpr std::int32_t kRoot = 0;

  std::int32_t next(std::int32_t state, unsigned char byte) const {
    return trans_[static_cast<std::size_t>(state) * classes_ + cls_[byte]];
  }
  // Length of the longest suffix of the text so far that is a prefix of some pattern.
  std::uint32_t depth(std::int32_t state) const { return depth_[static_cast<std::size_t>(state)]; }
  // Length of the longest pattern that ends here (0: none).
  std::uint32_t match_len(std::int32_t state) const { return match_len_[static_cast<std::size_t>(state)]; }
  std::size_t state_count() const { return depth_.size(); }

 private:
  std::uint16_t cls_[256] = {};
  std::size_t classes_ = 1;
  std::vector<std::int32_t> trans_;
  std::vector<std::uint32_t> depth_;
  std::vector<std::uint32_t> match_len_;
};

}  // namespace kz
