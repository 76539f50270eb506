#include "sensors/witness_table.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "kz/wipe.h"
#include "masking/encodings.h"

namespace kz {

using preload::witness::Table;
using preload::witness::Window;

std::unique_ptr<Table> build_witness_table(const std::vector<WatchedSecret>& secrets, bool values, bool refuse,
                                           bool tokens) {
  auto t = std::make_unique<Table>();
  std::memset(t.get(), 0, sizeof(Table));
  t->magic = preload::witness::kMagic;
  t->refuse = refuse ? 1 : 0;
  std::uint64_t keys[3];
  RAND_bytes(reinterpret_cast<unsigned char*>(keys), sizeof keys);
  t->k0 = keys[0];
  t->k1 = keys[1];
  t->mult = keys[2] | 1;
  OPENSSL_cleanse(keys, sizeof keys);
  if (!values && !tokens) return t;

  struct Found {
    std::string window;   // wiped below
    std::uint16_t secret;
  };
  std::vector<Found> windows;
  auto add_forms = [&windows](std::string_view s, std::uint16_t id) {
    if (s.size() < LeakDetector::kMinValueLen) return;
    auto forms = mask_variants(s, LeakDetector::kMinValueLen);
    for (auto& f : forms) {
      // A PEM armour line ("-----BEGIN ... KEY-----") is in every key of its kind.
      if (f.rfind("-----", 0) != 0) {
        const std::size_t len = std::min(f.size(), LeakDetector::kWindow);
        windows.push_back({f.substr((f.size() - len) / 2, len), id});
      }
      wipe(f);
    }
  };
  for (std::size_t i = 0; i < secrets.size() && i < preload::witness::kTokenSecret; ++i) {
    if (values) add_forms(secrets[i].value, static_cast<std::uint16_t>(i));
    if (tokens) add_forms(secrets[i].token, static_cast<std::uint16_t>(i | preload::witness::kTokenSecret));
  }
  // Pieces of 8 bytes when every window is long enough to hold an aligned one wherever
  // it sits (15 bytes), else of 4.
  const bool short_window = std::any_of(windows.begin(), windows.end(), [](const Found& f) { return f.window.size() < 15; });
  t->block = short_window ? 4 : 8;
  for (const Found& f : windows) {
    if (t->nwindows >= preload::witness::kMaxWindows) break;
    const auto* p = reinterpret_cast<const unsigned char*>(f.window.data());
    Window& w = t->windows[t->nwindows++];
    w.mac = preload::witness::siphash24(t->k0, t->k1, p, f.window.size());
    w.secret = f.secret;
    w.len = static_cast<std::uint8_t>(f.window.size());
    for (std::size_t o = 0; o + t->block <= f.window.size() && t->npieces < preload::witness::kMaxPieces; ++o)
      t->pieces[t->npieces++] = preload::witness::piece_bit(p + o, t->block, t->mult);
  }
  for (auto& f : windows) wipe(f.window);
  std::sort(t->windows, t->windows + t->nwindows, [](const Window& a, const Window& b) { return a.mac < b.mac; });
  return t;
}

}  // namespace kz
