#pragma once

#include <string>
#include <string_view>

namespace kz {

// RFC 3986 percent-encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, and
// '/' too when `keep_slash`; everything else becomes %XX (upper-case hex). This is also
// the URI encoding SigV4 prescribes (aws_sigv4.h); the providers build URLs with it.
std::string uri_encode(std::string_view s, bool keep_slash);

}  // namespace kz
