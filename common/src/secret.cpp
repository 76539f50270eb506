#include "kz/secret.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <utility>

#include "kz/wipe.h"

namespace kz {

namespace {
std::size_t page_round(std::size_t n) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return ((n == 0 ? 1 : n) + page - 1) / page * page;
}
}  // namespace

SecretValue SecretValue::allocate(std::size_t n, bool forkable) {
  SecretValue s;
  s.mapped_ = page_round(n);
  void* p = mmap(nullptr, s.mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  s.data_ = static_cast<char*>(p);
  madvise(p, s.mapped_, MADV_DONTDUMP);
  if (!forkable) madvise(p, s.mapped_, MADV_DONTFORK);  // helpers never inherit value pages
  s.locked_ = mlock(p, s.mapped_) == 0;
  s.size_ = n;
  return s;
}

SecretValue SecretValue::from(std::string_view bytes) {
  SecretValue s = allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretValue::~SecretValue() { release(); }

SecretValue::SecretValue(SecretValue&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)),
      locked_(std::exchange(o.locked_, false)) {}

SecretValue& SecretValue::operator=(SecretValue&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    locked_ = std::exchange(o.locked_, false);
  }
  return *this;
}

void SecretValue::trim_trailing_newline() {
  if (size_ > 0 && data_[size_ - 1] == '\n') {
    data_[--size_] = 0;
    if (size_ > 0 && data_[size_ - 1] == '\r') data_[--size_] = 0;
  }
}

void SecretValue::release() {
  if (data_ == nullptr) return;
  wipe(data_, mapped_);
  if (locked_) munlock(data_, mapped_);
  munmap(data_, mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
  locked_ = false;
}

}  // namespace kz
