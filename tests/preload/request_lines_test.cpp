// The request-line table of connections without state, and its use by outbound_write:
// a token in a body written after a fast-path head is checked against that head.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "fakes.h"
#include "kz/preload/request_lines.h"

namespace kz::preload::test {
namespace {

const void* key(int i) { return reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x7f0000001000 + 0x40 * i)); }

std::string line(const RequestLines& l, const void* k) {
  char m[RequestLines::kMaxMethod], t[RequestLines::kMaxTarget];
  std::size_t ml = 0, tl = 0;
  if (!l.get(k, m, &ml, t, &tl)) return "<none>";
  return std::string(m, ml) + " " + std::string(t, tl);
}

TEST(RequestLines, NotesGetsAndForgets) {
  auto l = std::make_unique<RequestLines>();
  const std::string head = "POST /v1/chat?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
  l->note(key(1), head.data(), head.size());
  EXPECT_EQ(line(*l, key(1)), "POST /v1/chat?x=1");
  EXPECT_EQ(line(*l, key(2)), "<none>");
  const std::string next = "GET /v2/models HTTP/1.1\r\n";
  l->note(key(1), next.data(), next.size());
  EXPECT_EQ(line(*l, key(1)), "GET /v2/models");
  l->forget(key(1));
  EXPECT_EQ(line(*l, key(1)), "<none>");
}

TEST(RequestLines, UnparsableOrOverlongLinesClearTheOldOne) {
  auto l = std::make_unique<RequestLines>();
  const std::string ok = "GET /v1/ok HTTP/1.1\r\n";
  l->note(key(1), ok.data(), ok.size());
  const std::string huge = "GET /v1/" + std::string(2000, 'a') + "/../admin HTTP/1.1\r\n";
  l->note(key(1), huge.data(), huge.size());
  EXPECT_EQ(line(*l, key(1)), "<none>");   // never the stale /v1/ok, never a cut path
  l->note(key(1), ok.data(), ok.size());
  const std::string cut = "GET /v1/no-space-before-the-end";
  l->note(key(1), cut.data(), cut.size());
  EXPECT_EQ(line(*l, key(1)), "<none>");
  const std::string long_method = std::string(20, 'M') + " / HTTP/1.1\r\n";
  l->note(key(1), long_method.data(), long_method.size());
  EXPECT_EQ(line(*l, key(1)), "<none>");
}

TEST(RequestLines, KeysSharingASlotNeverSeeEachOthersLine) {
  auto l = std::make_unique<RequestLines>();
  // Enough keys that some share a slot; each either reads its own line or none.
  for (int i = 0; i < 2000; ++i) {
    const std::string h = "GET /k/" + std::to_string(i) + " HTTP/1.1\r\n";
    l->note(key(i), h.data(), h.size());
  }
  int own = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string got = line(*l, key(i));
    if (got == "<none>") continue;
    EXPECT_EQ(got, "GET /k/" + std::to_string(i));
    ++own;
  }
  EXPECT_GT(own, 0);
  EXPECT_LE(own, static_cast<int>(RequestLines::kSlots));
}

TEST(RequestLines, ConcurrentWritersAndReadersNeverSeeATornLine) {
  auto l = std::make_unique<RequestLines>();
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  auto writer = [&](int id) {
    const std::string a = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", b = "PUT /bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb HTTP/1.1\r\n";
    for (int i = 0; !stop.load(); ++i) {
      const std::string& h = (i + id) % 2 ? a : b;
      l->note(key(0), h.data(), h.size());
    }
  };
  std::thread w1(writer, 0), w2(writer, 1);
  for (int i = 0; i < 200000; ++i) {
    const std::string got = line(*l, key(0));
    if (got != "<none>" && got != "GET /aaaaaaaaaaaaaaaaaaaa" && got != "PUT /bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
      ++torn;
  }
  stop = true;
  w1.join();
  w2.join();
  EXPECT_EQ(torn.load(), 0);
}

TEST(RequestLines, TokenInABodyWrittenAfterAFastPathHeadIsCheckedAgainstThatHead) {
  auto t = std::make_unique<ConnTable>();
  FakeBroker b;
  FakeWriter w;
  const std::string body = "{\"key\":\"" + kTokSame + "\"}";
  const std::string head = "POST /v1/upload HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  EXPECT_EQ(hook_write(*t, key(5), head, false, b, w), WriteOutcome::Consumed);
  EXPECT_EQ(t->count(), 1u);   // tracked from the connection's first write (message_tracker.h)
  EXPECT_EQ(hook_write(*t, key(5), body, false, b, w), WriteOutcome::Consumed);
  ASSERT_EQ(b.swaps.size(), 1u);
  EXPECT_EQ(b.swaps[0].method, "POST");
  EXPECT_EQ(b.swaps[0].path, "/v1/upload");
  EXPECT_EQ(w.sent, head + replace_all(body, kTokSame, kValSame));
  conn_drop(*t, key(5), b.ops());
  EXPECT_EQ(line(t->lines(), key(5)), "<none>");
}

}  // namespace
}  // namespace kz::preload::test
