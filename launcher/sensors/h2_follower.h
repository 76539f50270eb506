// HTTP/2 for the TLS tap: follows each connection whose writes open with the HTTP/2
// client preface, frame by frame across writes, and decodes every header block it sends
// (HEADERS and its CONTINUATIONs; padding and priority removed) with kz's HPACK decoder
// (kz/wire/hpack.h: Huffman, and this connection's own dynamic table, so a value sent
// once as a literal with incremental indexing and later only referred to by index is
// seen in every request that refers to it). The decoded fields come back as
// "name: value\r\n" text for the leak detector, which otherwise sees HPACK's Huffman
// codes and table indexes, not the values. DATA payloads are plain bytes in the write:
// the detector sees them as they are.
//
// A connection is given up ("lost") when a write is longer than what the tap captured
// and the missing bytes are not all inside a DATA (or other skipped) payload, when a
// header block is larger than kMaxBlock or does not decode: its dynamic table can no
// longer be trusted, so nothing more is decoded for it (counted in lost()).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace kz {

class H2Follower {
 public:
  static constexpr std::size_t kMaxBlock = 64 * 1024;    // one header block, CONTINUATIONs included
  static constexpr std::size_t kMaxConnections = 1024;   // followed at once (least recent goes)

  H2Follower();
  ~H2Follower();
  H2Follower(const H2Follower&) = delete;
  H2Follower& operator=(const H2Follower&) = delete;

  // One write of connection `conn` of process `pid`: `data` is what the tap captured,
  // `len` how long the write was (>= data.size()). Appends the header fields of every
  // header block that ends in this write to `fields` as "name: value\r\n" (the caller
  // wipes it: it may hold values). Returns true when the connection is HTTP/2.
  bool feed(pid_t pid, std::uint64_t conn, std::string_view data, std::uint64_t len, std::string* fields);
  // The process is gone: its connections' state goes (wiped).
  void forget(pid_t pid);

  std::uint64_t lost() const { return lost_; }
  std::size_t following() const { return conns_.size(); }

  struct Conn;

 private:
  using Key = std::pair<pid_t, std::uint64_t>;
  std::map<Key, std::list<std::unique_ptr<Conn>>::iterator> index_;
  std::list<std::unique_ptr<Conn>> conns_;   // most recently written first
  std::uint64_t lost_ = 0;
  void drop(std::map<Key, std::list<std::unique_ptr<Conn>>::iterator>::iterator it);
};

}  // namespace kz
