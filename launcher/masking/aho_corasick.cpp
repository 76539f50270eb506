#include "masking/aho_corasick.h"

#include <deque>

#include "kz/wipe.h"

namespace kz {

AhoCorasick::AhoCorasick(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    for (unsigned char c : p)
      if (cls_[c] == 0) cls_[c] = static_cast<std::uint16_t>(classes_++);

  // Trie. -1 marks a missing edge until the fail links fill it in.
  auto add_state = [&](std::uint32_t depth) {
    trans_.resize(trans_.size() + classes_, -1);
    depth_.push_back(depth);
    match_len_.push_back(0);
    return static_cast<std::int32_t>(depth_.size() - 1);
  };
  add_state(0);
  for (const auto& p : patterns) {
    std::int32_t s = kRoot;
    for (unsigned char c : p) {
      std::int32_t& t = trans_[static_cast<std::size_t>(s) * classes_ + cls_[c]];
      if (t < 0) {
        const std::int32_t n = add_state(depth_[static_cast<std::size_t>(s)] + 1);
        trans_[static_cast<std::size_t>(s) * classes_ + cls_[c]] = n;   // re-index: resize moved t
        s = n;
      } else {
        s = t;
      }
    }
    match_len_[static_cast<std::size_t>(s)] = static_cast<std::uint32_t>(p.size());
  }

  // Breadth-first: fail links, completed transitions, longest match ending at each state.
  std::vector<std::int32_t> fail(depth_.size(), kRoot);
  std::deque<std::int32_t> queue;
  for (std::size_t c = 0; c < classes_; ++c) {
    std::int32_t& t = trans_[c];
    if (t < 0) {
      t = kRoot;
    } else {
      fail[static_cast<std::size_t>(t)] = kRoot;
      queue.push_back(t);
    }
  }
  while (!queue.empty()) {
    const std::int32_t s = queue.front();
    queue.pop_front();
    const auto su = static_cast<std::size_t>(s);
    if (match_len_[su] == 0) match_len_[su] = match_len_[static_cast<std::size_t>(fail[su])];
    for (std::size_t c = 0; c < classes_; ++c) {
      std::int32_t& t = trans_[su * classes_ + c];
      const std::int32_t via_fail = trans_[static_cast<std::size_t>(fail[su]) * classes_ + c];
      if (t < 0) {
        t = via_fail;
      } else {
        fail[static_cast<std::size_t>(t)] = via_fail;
        queue.push_back(t);
      }
    }
  }
}

AhoCorasick::~AhoCorasick() {
  wipe(cls_, sizeof cls_);
  wipe(trans_.data(), trans_.size() * sizeof(std::int32_t));
  wipe(depth_.data(), depth_.size() * sizeof(std::uint32_t));
  wipe(match_len_.data(), match_len_.size() * sizeof(std::uint32_t));
}

}  // namespace kz
