// Wiping helpers: memory that held a secret is cleared with OPENSSL_cleanse, which the
// compiler may not optimise away.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kz {

void wipe(void* p, std::size_t n);
void wipe(std::string& s);          // clears the bytes, then empties the string
void wipe(std::vector<char>& v);

// A std::string that is wiped on destruction. Use for transient buffers that hold a
// secret (HTTP bodies, pipe reads); it lives on the normal heap, so keep it short-lived
// and move the value into a SecretValue as soon as it is extracted.
class ScrubbedString {
 public:
  ScrubbedString() = default;
  explicit ScrubbedString(std::string s) : s_(std::move(s)) {}
  ScrubbedString(const ScrubbedString&) = delete;
  ScrubbedString& operator=(const ScrubbedString&) = delete;
  ScrubbedString(ScrubbedString&& o) noexcept : s_(std::move(o.s_)) { o.s_.clear(); }
  ScrubbedString& operator=(ScrubbedString&& o) noexcept {
    if (this != &o) { wipe(s_); s_ = std::move(o.s_); o.s_.clear(); }
    return *this;
  }
  ~ScrubbedString() { wipe(s_); }

  std::string& str() { return s_; }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

}  // namespace kz
