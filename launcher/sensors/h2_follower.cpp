#include "sensors/h2_follower.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

#include "kz/wipe.h"
#include "kz/wire/hpack.h"

namespace kz {

namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t kPrefaceLen = sizeof kPreface - 1;
constexpr std::uint8_t kHeaders = 0x1, kContinuation = 0x9;
constexpr std::uint8_t kEndHeaders = 0x4, kPadded = 0x8, kPriority = 0x20;
// Decoded fields of one block: at most this many, in at most this many bytes (Huffman
// expands by up to 8/5, and every indexed reference repeats up to a table's worth).
constexpr std::size_t kMaxFields = 512;
constexpr std::size_t kArena = 256 * 1024;

void wipe_string(std::string& s) {
  if (!s.empty()) wipe(s.data(), s.size());
  s.clear();
}

}  // namespace

struct H2Follower::Conn {
  pid_t pid = 0;
  std::uint64_t conn = 0;
  bool lost = false;
  // The frame being read: its 9-byte header, then its payload.
  unsigned char hdr[9];
  std::size_t hdr_have = 0;
  bool in_payload = false;
  std::uint32_t payload_left = 0;
  std::uint8_t type = 0, flags = 0;
  bool collecting = false;    // HEADERS / CONTINUATION: the payload is kept
  std::string frame;          // that payload
  std::string block;          // the header block so far (HEADERS + CONTINUATIONs)
  bool in_block = false;      // a HEADERS without END_HEADERS was seen
  wire::hpack::DynTable table;

  ~Conn() {
    wipe_string(frame);
    wipe_string(block);
    wipe(table.bytes, sizeof table.bytes);
  }
};

namespace {

struct Scratch {
  std::vector<wire::hpack::Field> fields = std::vector<wire::hpack::Field>(kMaxFields);
  std::vector<unsigned char> arena = std::vector<unsigned char>(kArena);
};

// Decodes c.block into fields; false when the block does not decode (the table is then
// unknown: the connection is lost).
bool decode(H2Follower::Conn& c, Scratch& s, std::string* out) {
  wire::hpack::DecodedBlock b;
  b.fields = s.fields.data();
  b.max_fields = s.fields.size();
  b.arena = s.arena.data();
  b.arena_cap = s.arena.size();
  const auto st = wire::hpack::decode_block(c.table, reinterpret_cast<const unsigned char*>(c.block.data()),
                                            c.block.size(), &b);
  wipe_string(c.block);
  c.in_block = false;
  if (st == wire::hpack::DecodeStatus::Ok) {
    for (std::size_t i = 0; i < b.nfields; ++i) {
      const auto& f = b.fields[i];
      out->append(reinterpret_cast<const char*>(f.name), f.nl);
      out->append(": ");
      out->append(reinterpret_cast<const char*>(f.value), f.vl);
      out->append("\r\n");
    }
  }
  if (b.arena_used > 0) wipe(s.arena.data(), b.arena_used);
  return st == wire::hpack::DecodeStatus::Ok;
}

// The frame in c.hdr / c.frame is complete. false: the connection is lost.
bool frame_done(H2Follower::Conn& c, Scratch& s, std::string* out) {
  if (!c.collecting) return true;
  c.collecting = false;
  const auto* p = reinterpret_cast<const unsigned char*>(c.frame.data());
  std::size_t off = 0, end = c.frame.size();
  if (c.type == kHeaders) {
    if (c.in_block) return false;   // a new HEADERS inside a block: not HTTP/2 as we know it
    if (c.flags & kPadded) {
      if (end < 1) return false;
      const std::size_t pad = p[0];
      off = 1;
      if (pad > end - off) return false;
      end -= pad;
    }
    if (c.flags & kPriority) off += 5;
    if (off > end) return false;
  } else if (!c.in_block) {
    return false;   // a CONTINUATION with no HEADERS before it
  }
  if (c.block.size() + (end - off) > H2Follower::kMaxBlock) return false;
  c.block.append(c.frame.data() + off, end - off);
  wipe_string(c.frame);
  c.in_block = true;
  if (!(c.flags & kEndHeaders)) return true;
  return decode(c, s, out);
}

// The bytes p[0, n) of the connection's stream. false: the connection is lost.
bool follow(H2Follower::Conn& c, Scratch& s, const char* p, std::size_t n, std::string* out) {
  while (n > 0) {
    if (!c.in_payload) {
      const std::size_t k = std::min(n, sizeof c.hdr - c.hdr_have);
      std::memcpy(c.hdr + c.hdr_have, p, k);
      c.hdr_have += k;
      p += k;
      n -= k;
      if (c.hdr_have < sizeof c.hdr) return true;
      c.hdr_have = 0;
      c.payload_left = (std::uint32_t{c.hdr[0]} << 16) | (std::uint32_t{c.hdr[1]} << 8) | c.hdr[2];
      c.type = c.hdr[3];
      c.flags = c.hdr[4];
      // Inside a header block only its CONTINUATIONs may come (RFC 9113 6.10).
      if (c.in_block && c.type != kContinuation) return false;
      c.collecting = c.type == kHeaders || c.type == kContinuation;
      if (c.collecting && c.payload_left > H2Follower::kMaxBlock) return false;
      c.in_payload = true;
    }
    const std::size_t k = std::min<std::size_t>(n, c.payload_left);
    if (c.collecting) c.frame.append(p, k);
    c.payload_left -= static_cast<std::uint32_t>(k);
    p += k;
    n -= k;
    if (c.payload_left == 0) {
      c.in_payload = false;
      if (!frame_done(c, s, out)) return false;
    }
  }
  return true;
}

Scratch& scratch() {
  // The tap calls from one thread; the scratch is reused by every connection.
  static thread_local Scratch s;
  return s;
}

}  // namespace

H2Follower::H2Follower() = default;
H2Follower::~H2Follower() = default;

void H2Follower::drop(std::map<Key, std::list<std::unique_ptr<Conn>>::iterator>::iterator it) {
  conns_.erase(it->second);
  index_.erase(it);
}

bool H2Follower::feed(pid_t pid, std::uint64_t conn, std::string_view data, std::uint64_t len, std::string* fields) {
  const Key key{pid, conn};
  auto it = index_.find(key);
  std::size_t start = 0;
  if (data.size() >= kPrefaceLen && std::memcmp(data.data(), kPreface, kPrefaceLen) == 0) {
    // A connection starts (the library may reuse an object's address): fresh state.
    if (it != index_.end()) drop(it);
    if (conns_.size() >= kMaxConnections) {
      auto last = index_.find(Key{conns_.back()->pid, conns_.back()->conn});
      drop(last);
    }
    conns_.push_front(std::make_unique<Conn>());
    conns_.front()->pid = pid;
    conns_.front()->conn = conn;
    it = index_.emplace(key, conns_.begin()).first;
    start = kPrefaceLen;
  } else if (it == index_.end()) {
    return false;
  }
  if (it->second != conns_.begin()) conns_.splice(conns_.begin(), conns_, it->second);
  Conn& c = **it->second;
  if (c.lost) return true;
  bool ok = follow(c, scratch(), data.data() + start, data.size() - start, fields);
  // Bytes the tap did not capture: harmless inside a payload that is skipped anyway.
  const std::uint64_t missing = len > data.size() ? len - data.size() : 0;
  if (ok && missing > 0) {
    if (c.in_payload && !c.collecting && c.payload_left >= missing) {
      c.payload_left -= static_cast<std::uint32_t>(missing);
      if (c.payload_left == 0) c.in_payload = false;
    } else {
      ok = false;
    }
  }
  if (!ok) {
    c.lost = true;
    ++lost_;
    wipe_string(c.frame);
    wipe_string(c.block);
  }
  return true;
}

void H2Follower::forget(pid_t pid) {
  for (auto it = index_.lower_bound(Key{pid, 0}); it != index_.end() && it->first.first == pid;) {
    auto next = std::next(it);
    drop(it);
    it = next;
  }
}

}  // namespace kz
