#include "kz/wipe.h"

#include <openssl/crypto.h>

namespace kz {

void wipe(void* p, std::size_t n) {
  if (p != nullptr && n != 0) OPENSSL_cleanse(p, n);
}

void wipe(std::string& s) {
  // Clear the whole capacity: a shrunk string may keep old bytes past size().
  if (s.capacity() != 0) {
    s.resize(s.capacity());
    wipe(s.data(), s.size());
  }
  s.clear();
}

void wipe(std::vector<char>& v) {
  if (v.capacity() != 0) {
    v.resize(v.capacity());
    wipe(v.data(), v.size());
  }
  v.clear();
}

}  // namespace kz
