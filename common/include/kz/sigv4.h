// AWS Signature Version 4 (AWS4-HMAC-SHA256) for requests that are already signed: the
// verifier's side of aws_sigv4.h (the signer, whose building blocks it uses: canonical
// URI and query, string to sign, the signing key's HMAC chain), for requests signed in
// an Authorization header and for presigned URLs (X-Amz-Signature in the query).
//
// kz reads requests that a client has already signed (the agent's SDK, with a kz token
// as its secret key), so the entry point is a signed request head as sent on the wire:
// parse_signed() finds the credential scope, the signed headers and the signature, and
// canonical_request() rebuilds what the client signed. Clients differ in how they build
// the canonical URI (S3 encodes the path once; other services encode the already-encoded
// path again, and normalise dot segments), so the caller tries each UriStyle and keeps
// the one that reproduces the client's own signature (sigv4_resign.h). The broker, the
// fallback proxy (through the broker's decide) and the tests share this code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kz/aws_sigv4.h"
#include "kz/result.h"

namespace kz::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Header {
  std::string name;    // as sent
  std::string value;   // as sent (continuation lines joined with a space)
};

// A request head: "METHOD SP target SP HTTP/x.y", then header lines. Lines end in CRLF
// or LF (the published test vectors use LF). The head ends at the first empty line, or
// at the end of the text.
struct Head {
  std::string method, target;
  std::vector<Header> headers;
  std::size_t end = 0;   // bytes of text the head took, its empty line included

  // Values of every header named `name` (case-insensitive), in order.
  std::vector<std::string_view> values(std::string_view name) const;
};
Result<Head> parse_head(std::string_view text);

// What a signed request says about its signature.
struct Signed {
  bool presigned = false;             // X-Amz-Signature in the query
  std::string access_key;             // from the credential scope
  std::string date, region, service;  // the scope: yyyymmdd/region/service/aws4_request
  std::string amz_date;               // x-amz-date header (or X-Amz-Date query): yyyymmddThhmmssZ
  std::vector<std::string> signed_headers;   // lower-case, as listed
  std::string signature;              // 64 lower-case hex
  std::string content_sha256;         // the x-amz-content-sha256 header's value, if any
  // Where the signature's 64 hex digits are in the head text given to parse_signed.
  std::size_t signature_pos = 0;

  std::string scope() const { return date + "/" + region + "/" + service + "/aws4_request"; }
};
// Err (with a reason fit for an audit record, never a value) when the head is not a
// SigV4 request kz can read: another algorithm, a malformed Credential, a signed header
// the request does not carry, a date that does not match its scope.
Result<Signed> parse_signed(const Head& h, std::string_view head_text);

enum class UriStyle : std::uint8_t {
  EncodeOnce,            // S3: decode what was sent, encode each byte once
  EncodeTwice,           // other services: encode the path as sent (its %XX become %25XX)
  EncodeOnceNormalized,  // as above, after removing dot segments and empty segments
  EncodeTwiceNormalized,
};
inline constexpr UriStyle kUriStyles[] = {UriStyle::EncodeOnce, UriStyle::EncodeTwice, UriStyle::EncodeOnceNormalized,
                                          UriStyle::EncodeTwiceNormalized};

// The canonical URI of a request target (its path; an absolute-form target's path),
// built the way `style` says (aws_sigv4.h's canonical_uri does the encoding).
std::string canonical_uri(std::string_view target, UriStyle style);
// The target's query without X-Amz-Signature (a presigned URL cannot sign its own
// signature), for aws_sigv4.h's canonical_query.
std::string signed_query(std::string_view target);
// The signed headers' names and values (trimmed, runs of spaces made one, repeated
// headers joined with ','), then the list of names.
std::string canonical_headers(const Head& h, const std::vector<std::string>& signed_headers);

std::string canonical_request(const Head& h, const Signed& s, UriStyle style, std::string_view payload_hash);
std::string string_to_sign(const Signed& s, std::string_view canonical_request);
// Hex HMAC-SHA256 of string_to_sign under the key derived from `secret_key`.
std::string signature(std::string_view secret_key, const Signed& s, std::string_view string_to_sign);

// The payload hashes a request may have been signed with: its x-amz-content-sha256 header
// when present; else the body's hash (body_hash, empty when kz has not got the body), and
// for a presigned URL also UNSIGNED-PAYLOAD (S3's). Empty when none can be known.
std::vector<std::string> payload_candidates(const Signed& s, std::string_view body_hash);

// The access key id of the first "Credential=" (header) or "X-Amz-Credential=" (query)
// in a head, for telling whose request a head is when it cannot be parsed whole; "" if none.
std::string access_key_of(std::string_view head);

// "yyyymmddThhmmssZ" → Unix seconds; -1 when malformed.
std::int64_t parse_amz_date(std::string_view d);

}  // namespace kz::sigv4
