// Which host a request names, and whether it is the host the TLS connection verified
// (issue 15, class 7: domain fronting). A request can name its host twice: the Host
// header and, in absolute form ("GET https://h/x HTTP/1.1"), the request target's
// authority. A server routes by those, not by the TLS SNI, so a value may be swapped
// only when every name the request gives is the verified host. Shared by the shim (the
// grant path, which answers without the broker) and the broker's decide, so both apply
// the same comparison. Pure functions over caller memory; no allocation.
#pragma once

#include <cstddef>

namespace kz::wire {

// The host part of an authority "host[:port]" / "[v6]:port" (brackets dropped). false
// when it is not one: empty, userinfo ("u@h"), a port that is not digits, bytes outside
// printable ASCII, spaces.
bool authority_host(const char* p, std::size_t n, const char** host, std::size_t* host_len);

// Host names compare case-insensitively, one trailing dot ignored.
bool host_names_equal(const char* a, std::size_t an, const char* b, std::size_t bn);

// When target is absolute-form ("scheme://authority/path..."): the authority's span and
// where the path starts (n when the target ends after the authority). false for
// origin-form ("/path") and anything else.
bool absolute_target(const char* t, std::size_t n, std::size_t* auth_pos, std::size_t* auth_len,
                     std::size_t* path_pos);

enum class HostCheck {
  Match,        // the Host header (and an absolute target's authority) name the verified host
  Missing,      // no Host header and no absolute target: the request names no host
  Mismatch,     // a name is another host
  Malformed,    // a Host header that is not an authority, or a target that is neither a
                // path nor an absolute URL with a host
};

// http_host: the value of the request's one Host header (empty when absent); target:
// the request target; verified: the host the connection's certificate verified for
// (its SNI, else the IP literal). *named / *named_len: the host the request names that
// decided the answer (for the audit), pointing into http_host or target.
HostCheck check_request_host(const char* http_host, std::size_t hl, const char* target, std::size_t tl,
                             const char* verified, std::size_t vl, const char** named, std::size_t* named_len);

}  // namespace kz::wire
