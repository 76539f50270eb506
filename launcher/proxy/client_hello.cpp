#include "proxy/client_hello.h"

#include <cstdint>
#include <cstring>

namespace kz {

namespace {

constexpr unsigned char kHandshakeRecord = 22;
constexpr unsigned char kClientHelloType = 1;
constexpr std::size_t kRecordHeader = 5;
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtAlpn = 16;

// A bounds-checked reader over the reassembled handshake message.
struct Reader {
  const unsigned char* p;
  std::size_t n;
  std::size_t off = 0;
  bool ok = true;

  bool need(std::size_t k) {
    if (!ok || n - off < k) ok = false;
    return ok;
  }
  std::uint32_t u8() { return need(1) ? p[off++] : 0; }
  std::uint32_t u16() {
    if (!need(2)) return 0;
    const std::uint32_t v = (std::uint32_t{p[off]} << 8) | p[off + 1];
    off += 2;
    return v;
  }
  std::uint32_t u24() {
    if (!need(3)) return 0;
    const std::uint32_t v = (std::uint32_t{p[off]} << 16) | (std::uint32_t{p[off + 1]} << 8) | p[off + 2];
    off += 3;
    return v;
  }
  bool skip(std::size_t k) {
    if (need(k)) off += k;
    return ok;
  }
  Reader sub(std::size_t k) {
    Reader r{p + off, 0};
    if (need(k)) {
      r.n = k;
      off += k;
    } else {
      r.ok = false;
    }
    return r;
  }
  bool done() const { return off == n; }
};

// RFC 1123 labels (letters, digits, hyphen) plus "_" (seen in the wild); dots between
// labels; no empty label except one trailing dot.
bool plausible_dns_name(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!good || ++label > 63) return false;
  }
  return true;
}

void parse_extensions(Reader ext, ClientHello& out) {
  while (ext.ok && !ext.done()) {
    const std::uint32_t type = ext.u16();
    Reader body = ext.sub(ext.u16());
    if (!ext.ok) break;
    if (type == kExtServerName) {
      Reader list = body.sub(body.u16());
      while (list.ok && !list.done()) {
        const std::uint32_t name_type = list.u8();
        Reader name = list.sub(list.u16());
        if (!list.ok) break;
        if (name_type == 0 && out.sni.empty()) {
          out.sni.assign(reinterpret_cast<const char*>(name.p), name.n);
          out.sni_valid = plausible_dns_name(out.sni);
        }
      }
      if (!list.ok) out.sni_valid = false;
    } else if (type == kExtAlpn) {
      Reader list = body.sub(body.u16());
      while (list.ok && !list.done()) {
        Reader proto = list.sub(list.u8());
        if (!list.ok || proto.n == 0) break;
        out.alpn.emplace_back(reinterpret_cast<const char*>(proto.p), proto.n);
      }
    }
  }
  if (!ext.ok) out.status = HelloStatus::Malformed;
}

}  // namespace

bool ClientHello::offers(const char* proto) const {
  for (const auto& a : alpn)
    if (a == proto) return true;
  return false;
}

ClientHello parse_client_hello(const unsigned char* p, std::size_t n) {
  ClientHello out;
  auto finish = [&out](HelloStatus s) {
    out.status = s;
    return out;
  };
  if (n == 0) return out;
  // Record header: type 22, legacy version 3.x. One byte is enough to tell plain HTTP
  // (a letter) or an SSH banner from TLS.
  if (p[0] != kHandshakeRecord || (n >= 2 && p[1] != 3)) return finish(HelloStatus::NotTls);
  // The ClientHello may span several handshake records: reassemble their payloads (only
  // the bytes up to the message's end are needed).
  unsigned char msg[kMaxClientHello];
  std::size_t have = 0;
  std::size_t want = 0;   // 4 + message length, once its header is in
  std::size_t off = 0;
  while (true) {
    if (n - off < kRecordHeader) return finish(HelloStatus::NeedMore);
    if (p[off] != kHandshakeRecord || p[off + 1] != 3) return finish(off == 0 ? HelloStatus::NotTls : HelloStatus::Malformed);
    const std::size_t len = (std::size_t{p[off + 3]} << 8) | p[off + 4];
    // A record's payload is at most 2^14 bytes (plus expansion that a plaintext
    // handshake record never has).
    if (len == 0 || len > 16384) return finish(off == 0 ? HelloStatus::NotTls : HelloStatus::Malformed);
    const std::size_t in_buf = n - off - kRecordHeader;
    const std::size_t avail = in_buf < len ? in_buf : len;
    const std::size_t room = sizeof msg - have;
    const std::size_t take = avail < room ? avail : room;
    std::memcpy(msg + have, p + off + kRecordHeader, take);
    have += take;
    if (want == 0 && have >= 4) {
      if (msg[0] != kClientHelloType) return finish(HelloStatus::NotTls);
      want = 4 + ((std::size_t{msg[1]} << 16) | (std::size_t{msg[2]} << 8) | msg[3]);
      if (want > kMaxClientHello) return finish(HelloStatus::Malformed);
    }
    if (want != 0 && have >= want) break;
    if (avail < len) return finish(HelloStatus::NeedMore);   // the rest of this record is still to come
    off += kRecordHeader + len;
  }

  Reader r{msg + 4, want - 4};
  r.skip(2 + 32);            // legacy_version, random
  r.skip(r.u8());            // legacy_session_id
  r.skip(r.u16());           // cipher_suites
  r.skip(r.u8());            // legacy_compression_methods
  if (!r.ok) return finish(HelloStatus::Malformed);
  out.status = HelloStatus::Complete;
  if (r.done()) return out;  // no extensions (very old clients)
  Reader ext = r.sub(r.u16());
  if (!r.ok) return finish(HelloStatus::Malformed);
  parse_extensions(ext, out);
  return out;
}

}  // namespace kz
