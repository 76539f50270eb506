// SecretValue: the bytes of one resolved secret, kept in memory that is locked
// (mlock: never swapped), excluded from core dumps (MADV_DONTDUMP), and wiped when the
// object dies. Move-only. There is deliberately no operator<< or fmt formatter: a
// secret cannot be logged by accident.
#pragma once

#include <cstddef>
#include <string_view>

namespace kz {

class SecretValue {
 public:
  SecretValue() = default;
  static SecretValue from(std::string_view bytes);
  // Zero-filled locked buffer of n bytes to fill in place. `forkable` keeps the pages in
  // a forked child (needed for the environment block handed to execve); by default the
  // pages are MADV_DONTFORK so helper processes never inherit values.
  static SecretValue allocate(std::size_t n, bool forkable = false);
  char* data() { return data_; }
  ~SecretValue();

  SecretValue(const SecretValue&) = delete;
  SecretValue& operator=(const SecretValue&) = delete;
  SecretValue(SecretValue&& o) noexcept;
  SecretValue& operator=(SecretValue&& o) noexcept;

  std::string_view view() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // True when the pages could be locked; false when RLIMIT_MEMLOCK was too small (the
  // value is still excluded from dumps and wiped).
  bool locked() const { return locked_; }

  // Drop a trailing "\n" or "\r\n" (file and CLI outputs end with one).
  void trim_trailing_newline();

 private:
  void release();
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapped_ = 0;
  bool locked_ = false;
};

}  // namespace kz
