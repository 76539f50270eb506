// AWS Signature Version 4 (AWS4-HMAC-SHA256) on OpenSSL EVP.
//
// A small, reusable signer: give it the request as it will go on the wire plus the
// credentials, and it returns the canonical request, the string to sign, the signature
// and the headers to add (Authorization, X-Amz-Date, X-Amz-Security-Token,
// X-Amz-Content-Sha256) — or, for presigned URLs, the query string to use.
//
// Canonicalisation rules implemented (checked against the AWS test suites):
//  * URI path: when `normalize_path`, dot segments are removed and repeated slashes
//    collapsed (RFC 3986, keeping a trailing slash). Then, with `double_encode_path`
//    (the AWS default for every service but S3), every byte of the wire path other than
//    unreserved characters and '/' is percent-encoded (so an already-encoded path ends up
//    encoded twice). Without it (S3) only bytes that are not already valid in a path are
//    encoded and existing %XX escapes are kept.
//  * Query: each name and value is percent-decoded, re-encoded with the strict RFC 3986
//    unreserved set, and the pairs are sorted by name then value. A parameter without
//    '=' gets an empty value.
//  * Headers: names lower-cased; values trimmed and runs of spaces collapsed to one;
//    repeated headers joined with ',' in order of appearance; sorted by name. Every header
//    given is signed except authorization, user-agent, expect and x-amzn-trace-id (what
//    the AWS SDKs leave out).
//  * Payload hash: hex SHA-256 of the body.
//
// Secret material (the secret access key, the derived signing keys) is kept in buffers
// that are wiped after use; the session token appears in the canonical request, which is
// therefore returned as a ScrubbedString.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kz/digest.h"
#include "kz/result.h"
#include "kz/uri_encode.h"
#include "kz/wipe.h"

namespace kz::sigv4 {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Request {
  std::string method = "GET";
  std::string path = "/";   // raw path as sent on the wire, without the query
  std::string query;        // raw query string, without the leading '?'
  HeaderList headers;       // must contain Host; X-Amz-Date is added when missing
  std::string body;
};

struct SigV4Options {
  bool normalize_path = true;       // false for S3
  bool double_encode_path = true;   // false for S3
  bool add_content_sha256 = false;  // add and sign X-Amz-Content-Sha256 (S3, "sign_body")
  // Header signing: the token is not signed; the caller sends it unsigned (a few services
  // want that). Presigning: X-Amz-Security-Token is left out of the signed query.
  bool omit_session_token = false;
};

struct SigV4Params {
  std::string access_key_id;
  std::string_view secret_access_key;  // not copied; must outlive the call
  std::string_view session_token;      // empty: none
  std::string region;
  std::string service;
  std::string amz_date;                // "YYYYMMDDTHHMMSSZ" (UTC)
  SigV4Options options;
};

struct SigV4Result {
  ScrubbedString canonical_request;  // may contain the session token
  std::string string_to_sign;
  std::string signature;             // lower-case hex
  std::string signed_headers;        // "host;x-amz-date"
  std::string credential_scope;      // "20150830/us-east-1/service/aws4_request"
  std::string authorization;         // header value (header signing only)
  // Header signing: headers to add to the request (X-Amz-Date, X-Amz-Security-Token,
  // X-Amz-Content-Sha256 when not already present, and Authorization last).
  HeaderList add_headers;
  // Presigning: the full query string to send (the original parameters plus the
  // X-Amz-* ones and X-Amz-Signature).
  std::string presigned_query;
};

// Sign with the Authorization header.
Result<SigV4Result> sign_request(const SigV4Request& req, const SigV4Params& params);
// Presigned URL (query-string authentication), valid for `expires_seconds`.
Result<SigV4Result> presign_request(const SigV4Request& req, const SigV4Params& params,
                                    long expires_seconds);

// Building blocks (exposed for tests and for servers that verify signatures).
std::string canonical_uri(std::string_view raw_path, const SigV4Options& opt);
std::string canonical_query(std::string_view raw_query);
// Canonical header block ("name:value\n"...) and the signed-header list.
void canonical_headers(const HeaderList& headers, std::string* block, std::string* signed_list);
using kz::sha256_hex;   // kz/digest.h
// Raw HMAC-SHA256 (32 bytes).
std::string hmac_sha256(std::string_view key, std::string_view data);
inline std::string hex(std::string_view bytes) { return hex_lower(bytes); }
// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(creq)>"
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);
// kSigning = HMAC chain over date/region/service/"aws4_request"; wiped by the caller
// (ScrubbedString).
ScrubbedString derive_signing_key(std::string_view secret_access_key, std::string_view date,
                                  std::string_view region, std::string_view service);
// X-Amz-Date for a point in time (UTC).
std::string format_amz_date(std::chrono::system_clock::time_point t);

// Text helpers the signer and the verifier (sigv4.h) share.
// ASCII lower case.
std::string lower(std::string_view s);
// The value of a hex digit, -1 for any other character.
int hex_value(char c);
// %XX decoded; a '%' not followed by two hex digits is kept as it is.
std::string percent_decode(std::string_view s);
// Blanks (space, tab) removed from both ends.
std::string_view trim_blanks(std::string_view s);
// A header value as SigV4 canonicalises it: trimmed, each run of blanks (space, tab, CR,
// LF) made one space.
std::string canonical_header_value(std::string_view v);

}  // namespace kz::sigv4
