// HTTP/1.x framing of the outbound rewrite: head parsing, edits with Content-Length and
// chunk-size correction, and the decimal/hex formatters.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kz/preload/http_rewrite.h"

namespace kz::preload {
namespace {

std::string span(const std::string& s, Span sp) { return s.substr(sp.pos, sp.len); }

HttpHead parse(const std::string& s) { return parse_head(s.data(), s.size()); }

// Applies edits to `in` and returns the output (never longer than the input).
struct Applied {
  std::string out;
  ApplyResult r;
  std::vector<Edit> edits;
};

Applied apply(const std::string& in, std::vector<Edit> edits, bool fixup, bool in_chunked = false) {
  Applied a;
  std::vector<char> out(in.size() + 1, '\xAA');
  FrameContext ctx;
  ctx.fixup_lengths = fixup;
  ctx.in_chunked_body = in_chunked;
  a.r = apply_edits(in.data(), in.size(), edits.data(), edits.size(), ctx, out.data());
  EXPECT_LE(a.r.out_len, in.size());
  EXPECT_EQ(out[in.size()], '\xAA') << "wrote past the input length";
  a.out.assign(out.data(), a.r.out_len);
  a.edits = std::move(edits);
  return a;
}

// An edit that replaces the first occurrence of `what` in `in` with `repl`.
Edit edit_for(const std::string& in, const std::string& what, const char* repl, std::size_t from = 0) {
  const std::size_t pos = in.find(what, from);
  EXPECT_NE(pos, std::string::npos) << what;
  Edit e;
  e.pos = pos;
  e.len = what.size();
  e.repl = repl;
  e.repl_len = std::strlen(repl);
  return e;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

const std::string kTok = "KZ_TOK_aaaaaaaaaaaaaaaaaaaaaaa";   // 30 bytes
const char* const kSameLen = "sk-0123456789abcdefghijklmnopq"; // 30 bytes
const char* const kShort = "short-val!";                       // 10 bytes

// ---- looks_like_request_start / parse_head -------------------------------------------

TEST(LooksLikeRequest, Basics) {
  EXPECT_TRUE(looks_like_request_start("GET / HTTP/1.1\r\n", 16));
  EXPECT_TRUE(looks_like_request_start("POST ", 5));
  EXPECT_FALSE(looks_like_request_start("GET", 3));           // no space yet
  EXPECT_FALSE(looks_like_request_start("GE /", 4));          // method too short
  EXPECT_FALSE(looks_like_request_start("get / HTTP/1.1", 14));  // lower case
  EXPECT_FALSE(looks_like_request_start("{\"a\":1}", 7));
  EXPECT_FALSE(looks_like_request_start("", 0));
  EXPECT_FALSE(looks_like_request_start("ABCDEFGHIJKLMNOPQ /", 19));   // 17 letters
}

TEST(ParseHead, RequestLineAndCompleteHead) {
  const std::string s = "POST /v1/chat?x=1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nhello";
  const HttpHead h = parse(s);
  ASSERT_TRUE(h.is_request);
  ASSERT_TRUE(h.complete);
  EXPECT_EQ(span(s, h.method), "POST");
  EXPECT_EQ(span(s, h.target), "/v1/chat?x=1");
  EXPECT_EQ(h.head_end, s.size() - 5);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(span(s, h.cl_value), "5");
  EXPECT_FALSE(h.chunked);
  EXPECT_FALSE(h.expect_continue);
}

TEST(ParseHead, MinimalRequestWithoutHeaders) {
  const std::string s = "GET / HTTP/1.0\r\n\r\n";
  const HttpHead h = parse(s);
  ASSERT_TRUE(h.is_request);
  ASSERT_TRUE(h.complete);
  EXPECT_EQ(span(s, h.method), "GET");
  EXPECT_EQ(span(s, h.target), "/");
  EXPECT_EQ(h.head_end, s.size());
  EXPECT_FALSE(h.has_content_length);
}

TEST(ParseHead, IncompleteHead) {
  const std::string s = "GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc";
  const HttpHead h = parse(s);
  EXPECT_TRUE(h.is_request);
  EXPECT_FALSE(h.complete);
  EXPECT_EQ(span(s, h.target), "/x");
  EXPECT_FALSE(h.has_content_length);
  // Every prefix of a complete head is incomplete; the full one is complete.
  const std::string full = "PUT /y HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
  for (std::size_t k = 0; k < full.size(); ++k) {
    const HttpHead p = parse_head(full.data(), k);
    EXPECT_FALSE(p.complete) << k;
  }
  EXPECT_TRUE(parse(full).complete);
}

TEST(ParseHead, RequestLineOnlyWithoutCRLFIsNotARequest) {
  EXPECT_FALSE(parse("GET / HTTP/1.1").is_request);
  EXPECT_FALSE(parse("GET / HTTP/1.1\n\r\n").is_request);   // bare LF ends the request line
  EXPECT_FALSE(parse("GET / HTTP/2.0\r\n\r\n").is_request);
  EXPECT_FALSE(parse("GET /HTTP/1.1\r\n\r\n").is_request);   // no space before the version
  EXPECT_FALSE(parse("HTTP/1.1 200 OK\r\n\r\n").is_request);  // a response
  EXPECT_FALSE(parse("KZ_TOK_abc\r\n\r\n").is_request);
}

TEST(ParseHead, ContentLengthIsCaseInsensitiveAndTrimmed) {
  for (const char* name : {"content-length", "CONTENT-LENGTH", "Content-length", "cOnTeNt-LeNgTh"}) {
    const std::string s = std::string("POST / HTTP/1.1\r\n") + name + ":\t 42 \t\r\n\r\n";
    const HttpHead h = parse(s);
    ASSERT_TRUE(h.complete) << name;
    EXPECT_TRUE(h.has_content_length) << name;
    EXPECT_EQ(h.content_length, 42u) << name;
    EXPECT_EQ(span(s, h.cl_value), "42") << name;
  }
}

TEST(ParseHead, MalformedOrDuplicatedContentLengthIsAbsent) {
  const char* bad[] = {
      "Content-Length: 4x\r\n",
      "Content-Length: -4\r\n",
      "Content-Length: \r\n",
      "Content-Length: 4 4\r\n",
      "Content-Length: 1234567890123456\r\n",   // 16 digits
      "Content-Length: 5\r\nContent-Length: 5\r\n",
      "Content-Length: 5\r\ncontent-length: 6\r\n",
  };
  for (const char* hdr : bad) {
    const std::string s = std::string("POST / HTTP/1.1\r\nHost: h\r\n") + hdr + "\r\nhello";
    const HttpHead h = parse(s);
    ASSERT_TRUE(h.complete) << hdr;
    EXPECT_FALSE(h.has_content_length) << hdr;
  }
  // 15 digits is still a number.
  const HttpHead ok = parse("POST / HTTP/1.1\r\nContent-Length: 123456789012345\r\n\r\n");
  EXPECT_TRUE(ok.has_content_length);
  EXPECT_EQ(ok.content_length, 123456789012345u);
  // A header whose name only starts like Content-Length does not count.
  const HttpHead other = parse("POST / HTTP/1.1\r\nContent-Length-X: 5\r\n\r\n");
  EXPECT_FALSE(other.has_content_length);
}

TEST(ParseHead, ChunkedWinsOverContentLength) {
  const HttpHead a = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(a.chunked);
  const HttpHead b = parse("POST / HTTP/1.1\r\ntransfer-encoding: gzip, Chunked \r\nContent-Length: 10\r\n\r\n");
  EXPECT_TRUE(b.chunked);
  EXPECT_FALSE(b.has_content_length);
  const HttpHead c = parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_FALSE(c.chunked);
  const HttpHead d = parse("POST / HTTP/1.1\r\nTransfer-Encoding: notchunked\r\n\r\n");
  EXPECT_FALSE(d.chunked);
}

TEST(ParseHead, ExpectContinue) {
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").expect_continue);
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nEXPECT:100-Continue\r\n\r\n").expect_continue);
  EXPECT_FALSE(parse("POST / HTTP/1.1\r\nExpect: 100-continue-x\r\n\r\n").expect_continue);
  EXPECT_FALSE(parse("POST / HTTP/1.1\r\nX-Expect: 100-continue\r\n\r\n").expect_continue);
}

TEST(ParseHead, HeadersInTheBodyAreNotParsed) {
  // A body that looks like headers must not affect the head.
  const std::string s = "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nContent-Length: 7\r\nTransfer-Encoding: chunked";
  const HttpHead h = parse(s);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 40u);
  EXPECT_FALSE(h.chunked);
}

// ---- format_dec / format_hex ------------------------------------------------------------

TEST(Format, Decimal) {
  char b[24];
  EXPECT_EQ(format_dec(0, b, sizeof b), 1u);
  EXPECT_EQ(std::string(b, 1), "0");
  EXPECT_EQ(format_dec(98, b, sizeof b), 2u);
  EXPECT_EQ(std::string(b, 2), "98");
  EXPECT_EQ(format_dec(1000, b, sizeof b), 4u);
  EXPECT_EQ(std::string(b, 4), "1000");
  EXPECT_EQ(format_dec(18446744073709551615ull, b, sizeof b), 20u);
  EXPECT_EQ(std::string(b, 20), "18446744073709551615");
  // Too small: 0 and nothing written.
  char small[2] = {'x', 'y'};
  EXPECT_EQ(format_dec(123, small, 2), 0u);
  EXPECT_EQ(small[0], 'x');
  EXPECT_EQ(format_dec(12, small, 2), 2u);
  EXPECT_EQ(std::string(small, 2), "12");
}

TEST(Format, Hex) {
  char b[24];
  EXPECT_EQ(format_hex(0, b, sizeof b), 1u);
  EXPECT_EQ(std::string(b, 1), "0");
  EXPECT_EQ(format_hex(255, b, sizeof b), 2u);
  EXPECT_EQ(std::string(b, 2), "ff");
  EXPECT_EQ(format_hex(0x1a2b, b, sizeof b), 4u);
  EXPECT_EQ(std::string(b, 4), "1a2b");
  EXPECT_EQ(format_hex(~std::uint64_t{0}, b, sizeof b), 16u);
  EXPECT_EQ(std::string(b, 16), "ffffffffffffffff");
  char small[1] = {'x'};
  EXPECT_EQ(format_hex(16, small, 1), 0u);
  EXPECT_EQ(small[0], 'x');
}

// ---- apply_edits --------------------------------------------------------------------------

TEST(ApplyEdits, NoEditsCopiesInput) {
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  const Applied a = apply(in, {}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.applied, 0u);
  EXPECT_EQ(a.r.dropped, 0u);
}

TEST(ApplyEdits, SameLengthEditAnywhereWithoutFixup) {
  // Same-length edits never touch framing, so they apply even with fixup off and even
  // where the framing is not in the buffer (a body continuation, an incomplete head).
  const std::string in = "POST /a HTTP/1.1\r\nAuthorization: Bearer " + kTok + "\r\nContent-Length: 40\r\n\r\n{\"k\":\"" + kTok;
  Applied a = apply(in, {edit_for(in, kTok, kSameLen), edit_for(in, kTok, kSameLen, in.find(kTok) + 1)}, false);
  EXPECT_EQ(a.out, replace_all(in, kTok, kSameLen));
  EXPECT_EQ(a.r.applied, 2u);
  EXPECT_EQ(a.r.dropped, 0u);
  EXPECT_FALSE(a.edits[0].dropped);

  const std::string cont = "more body " + kTok + " and more";
  a = apply(cont, {edit_for(cont, kTok, kSameLen)}, false);
  EXPECT_EQ(a.out, replace_all(cont, kTok, kSameLen));
  EXPECT_EQ(a.r.applied, 1u);
}

TEST(ApplyEdits, ShorterEditInHeadNeedsNoFramingButNeedsFixup) {
  const std::string in = "GET /a HTTP/1.1\r\nAuthorization: Bearer " + kTok + "\r\nHost: h\r\n\r\n";
  Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, replace_all(in, kTok, kShort));
  EXPECT_EQ(a.r.applied, 1u);
  EXPECT_EQ(a.r.dropped, 0u);

  // Fixup off: the length-changing edit is dropped and the input goes out unchanged.
  a = apply(in, {edit_for(in, kTok, kShort)}, false);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.applied, 0u);
  EXPECT_EQ(a.r.dropped, 1u);
  EXPECT_TRUE(a.edits[0].dropped);
}

TEST(ApplyEdits, ShorterEditInIncompleteHeadIsDropped) {
  // Without the end of the head the edit cannot be placed (head or body?): dropped.
  const std::string in = "GET /a HTTP/1.1\r\nAuthorization: Bearer " + kTok + "\r\nHost: h\r\n";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
  EXPECT_TRUE(a.edits[0].dropped);
}

TEST(ApplyEdits, LongerEditIsAlwaysDropped) {
  const std::string in = "GET /a HTTP/1.1\r\nX: KZ_TOK_ab\r\n\r\n";
  const Applied a = apply(in, {edit_for(in, "KZ_TOK_ab", "0123456789abcdef")}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
}

std::string post_with_body(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v1 HTTP/1.1\r\nHost: h\r\n" + extra_headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\nContent-Type: application/json\r\n\r\n" + body;
}

TEST(ApplyEdits, ContentLengthCorrectedForShorterBodyEdit) {
  const std::string body = "{\"api_key\":\"" + kTok + "\",\"x\":1}";
  const std::string in = post_with_body(body);
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  const std::string new_body = replace_all(body, kTok, kShort);
  EXPECT_EQ(a.out, post_with_body(new_body));
  EXPECT_EQ(a.r.applied, 1u);
  EXPECT_EQ(a.r.dropped, 0u);
  const HttpHead h = parse(a.out);
  ASSERT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, new_body.size());
  EXPECT_EQ(a.out.size() - h.head_end, new_body.size());
}

TEST(ApplyEdits, ContentLengthDigitCountShrinks) {
  // 100 -> 98: a two-byte-shorter value in a 100-byte body.
  {
    std::string body = "[\"" + kTok + "\"]";
    body += std::string(100 - body.size(), ' ');
    ASSERT_EQ(body.size(), 100u);
    const std::string in = post_with_body(body);
    const char* v28 = "0123456789012345678901234567";
    const Applied a = apply(in, {edit_for(in, kTok, v28)}, true);
    EXPECT_NE(a.out.find("Content-Length: 98\r\n"), std::string::npos) << a.out;
    EXPECT_EQ(a.out, post_with_body(replace_all(body, kTok, v28)));
  }
  // 10 -> 9.
  {
    const std::string in = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nKZ_TOK_ab!";
    const Applied a = apply(in, {edit_for(in, "KZ_TOK_ab", "12345678")}, true);
    EXPECT_EQ(a.out, "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n12345678!");
  }
  // 1000 -> 960 with two edits in the body: four digits become three.
  {
    std::string body = kTok + " " + kTok;
    body += std::string(1000 - body.size(), 'x');
    const std::string in = post_with_body(body);
    const std::size_t first = in.find(kTok);
    const Applied a = apply(in, {edit_for(in, kTok, kShort), edit_for(in, kTok, kShort, first + 1)}, true);
    EXPECT_EQ(a.out, post_with_body(replace_all(body, kTok, kShort)));
    EXPECT_NE(a.out.find("Content-Length: 960\r\n"), std::string::npos);
  }
}

TEST(ApplyEdits, HeadAndBodyEditsTogether) {
  const std::string body = "{\"k\":\"" + kTok + "\"}";
  const std::string in = post_with_body(body, "Authorization: Bearer " + kTok + "\r\n");
  const std::size_t first = in.find(kTok);
  const Applied a = apply(in, {edit_for(in, kTok, kShort), edit_for(in, kTok, kShort, first + 1)}, true);
  EXPECT_EQ(a.out, post_with_body(replace_all(body, kTok, kShort), "Authorization: Bearer " + std::string(kShort) + "\r\n"));
  EXPECT_EQ(a.r.applied, 2u);
}

TEST(ApplyEdits, BodyIncompleteDropsBodyEditKeepsHeadEdit) {
  // Content-Length says 200 but only part of the body is here: the body edit cannot be
  // accounted for (the rest of the body is counted by the server), the head edit can.
  const std::string in = "POST / HTTP/1.1\r\nAuthorization: Bearer " + kTok +
                         "\r\nContent-Length: 200\r\n\r\n{\"k\":\"" + kTok + "\"";
  const std::size_t first = in.find(kTok);
  const Applied a = apply(in, {edit_for(in, kTok, kShort), edit_for(in, kTok, kShort, first + 1)}, true);
  EXPECT_EQ(a.r.applied, 1u);
  EXPECT_EQ(a.r.dropped, 1u);
  EXPECT_FALSE(a.edits[0].dropped);
  EXPECT_TRUE(a.edits[1].dropped);
  std::string want = in;
  want.replace(first, kTok.size(), kShort);
  EXPECT_EQ(a.out, want);
  EXPECT_NE(a.out.find("Content-Length: 200\r\n"), std::string::npos);
}

TEST(ApplyEdits, EditPastTheBodyIsDropped) {
  // A second (pipelined) request after a complete body: not covered by the first head.
  const std::string first_req = post_with_body("{}");
  const std::string in = first_req + "GET /x?k=" + kTok + " HTTP/1.1\r\n\r\n";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
}

TEST(ApplyEdits, BodyWithoutHeadIsDropped) {
  // The head went out in an earlier write: a length-changing edit has no framing here.
  const std::string in = "{\"k\":\"" + kTok + "\"}";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
  EXPECT_EQ(a.r.applied, 0u);
}

std::string chunk(const std::string& data) {
  char hex[24];
  const std::size_t n = format_hex(data.size(), hex, sizeof hex);
  return std::string(hex, n) + "\r\n" + data + "\r\n";
}

const std::string kChunkedHead = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

TEST(ApplyEdits, ChunkSizeCorrected) {
  const std::string data = "{\"key\":\"" + kTok + "\"}";   // 40 bytes = 0x28
  const std::string in = kChunkedHead + chunk("hello") + chunk(data) + "0\r\n\r\n";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  const std::string want = kChunkedHead + chunk("hello") + chunk(replace_all(data, kTok, kShort)) + "0\r\n\r\n";
  EXPECT_EQ(a.out, want);
  EXPECT_NE(a.out.find("\r\n14\r\n{\"key\""), std::string::npos) << a.out;   // 0x28 - 20 = 0x14
  EXPECT_EQ(a.r.applied, 1u);
  EXPECT_EQ(chunked_tail(a.out.data(), a.out.size(), kChunkedHead.size()), ChunkedTail::Ended);
}

TEST(ApplyEdits, ChunkSizeDigitCountShrinksAndUppercaseHex) {
  // 0x10A (266) - 20 = 0xF6 (246): three hex digits become two.
  std::string data = kTok;
  data += std::string(0x10A - data.size(), 'y');
  const std::string in = kChunkedHead + "10A\r\n" + data + "\r\n";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, kChunkedHead + "f6\r\n" + replace_all(data, kTok, kShort) + "\r\n");
  EXPECT_EQ(chunked_tail(a.out.data(), a.out.size(), kChunkedHead.size()), ChunkedTail::Boundary);
}

TEST(ApplyEdits, ChunkWithExtensionAndPartialChunk) {
  // The chunk runs past the buffer: its size line is here, so it can still be corrected.
  const std::string data = "abc " + kTok + " def";
  const std::string in = kChunkedHead + "40;name=v\r\n" + data;   // 0x40 = 64 > data here
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, kChunkedHead + "2c;name=v\r\n" + replace_all(data, kTok, kShort));
  EXPECT_EQ(chunked_tail(a.out.data(), a.out.size(), kChunkedHead.size()), ChunkedTail::Incomplete);
}

TEST(ApplyEdits, TwoEditsInTwoChunks) {
  const std::string d1 = "a" + kTok;
  const std::string d2 = kTok + "b" + kTok;
  const std::string in = kChunkedHead + chunk(d1) + chunk(d2) + "0\r\n\r\n";
  const std::size_t p1 = in.find(kTok);
  const std::size_t p2 = in.find(kTok, p1 + 1);
  const std::size_t p3 = in.find(kTok, p2 + 1);
  const Applied a = apply(in, {edit_for(in, kTok, kShort), edit_for(in, kTok, kShort, p2), edit_for(in, kTok, kShort, p3)}, true);
  EXPECT_EQ(a.out, kChunkedHead + chunk(replace_all(d1, kTok, kShort)) + chunk(replace_all(d2, kTok, kShort)) + "0\r\n\r\n");
  EXPECT_EQ(a.r.applied, 3u);
}

TEST(ApplyEdits, ChunkContinuationUsesConnectionState) {
  // A buffer that continues a chunked body of an earlier head.
  const std::string data = "x=" + kTok;
  const std::string in = chunk(data) + "0\r\n\r\n";
  Applied a = apply(in, {edit_for(in, kTok, kShort)}, true, /*in_chunked=*/true);
  EXPECT_EQ(a.out, chunk(replace_all(data, kTok, kShort)) + "0\r\n\r\n");
  EXPECT_EQ(chunked_tail(a.out.data(), a.out.size(), 0), ChunkedTail::Ended);
  // Without that state the same bytes have no framing: dropped.
  a = apply(in, {edit_for(in, kTok, kShort)}, true, /*in_chunked=*/false);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
}

TEST(ApplyEdits, EditAcrossChunkBoundaryOrInChunkLineIsDropped) {
  // The token straddles the end of its chunk's data: no single chunk holds it.
  const std::string d1 = "ab" + kTok.substr(0, 10);
  const std::string in = kChunkedHead + chunk(d1) + kTok.substr(10) + "\r\n";
  // Pretend a scanner found the token across the CRLF (positions only matter here).
  Edit e;
  e.pos = in.find("KZ_TOK_");
  e.len = 10 + 2 + 20;   // runs over the chunk's CRLF into the next line
  e.repl = kShort;
  e.repl_len = std::strlen(kShort);
  const Applied a = apply(in, {e}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
}

TEST(ApplyEdits, MalformedChunkDropsEdit) {
  const std::string in = kChunkedHead + "zz\r\n" + kTok + "\r\n";
  const Applied a = apply(in, {edit_for(in, kTok, kShort)}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.dropped, 1u);
  // Declared size that does not end in CRLF: not a chunk.
  const std::string in2 = kChunkedHead + "3\r\n" + kTok + "\r\n";
  const Applied b = apply(in2, {edit_for(in2, kTok, kShort)}, true);
  EXPECT_EQ(b.out, in2);
  EXPECT_EQ(b.r.dropped, 1u);
}

TEST(ApplyEdits, OnlyLengthChangingEditsAreDroppedWhenMixed) {
  const std::string body = "{\"a\":\"" + kTok + "\",\"b\":\"" + kTok + "\"}";
  const std::string in = "POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\n" + body;   // body incomplete
  const std::size_t first = in.find(kTok);
  const Applied a = apply(in, {edit_for(in, kTok, kSameLen), edit_for(in, kTok, kShort, first + 1)}, true);
  std::string want = in;
  want.replace(first, kTok.size(), kSameLen);
  EXPECT_EQ(a.out, want);
  EXPECT_EQ(a.r.applied, 1u);
  EXPECT_EQ(a.r.dropped, 1u);
}

TEST(ApplyEdits, PreDroppedEditIsSkipped) {
  const std::string in = "GET /a HTTP/1.1\r\nX: " + kTok + "\r\n\r\n";
  Edit e = edit_for(in, kTok, kSameLen);
  e.dropped = true;
  const Applied a = apply(in, {e}, true);
  EXPECT_EQ(a.out, in);
  EXPECT_EQ(a.r.applied, 0u);
}

}  // namespace
}  // namespace kz::preload

TEST(ChunkedTail, WhereTheBodyStands) {
  using T = kz::preload::ChunkedTail;
  using kz::preload::chunked_tail;
  auto tail = [](const std::string& s) { return chunked_tail(s.data(), s.size(), 0); };
  EXPECT_EQ(tail(""), T::Boundary);
  EXPECT_EQ(tail("5\r\nhello\r\n"), T::Boundary);
  EXPECT_EQ(tail("5\r\nhello\r\n3;ext=1\r\nabc\r\n"), T::Boundary);
  EXPECT_EQ(tail("5"), T::Incomplete);
  EXPECT_EQ(tail("5\r"), T::Incomplete);
  EXPECT_EQ(tail("5\r\nhel"), T::Incomplete);
  EXPECT_EQ(tail("5\r\nhello"), T::Incomplete);
  EXPECT_EQ(tail("5\r\nhello\r"), T::Incomplete);
  EXPECT_EQ(tail("0\r\n"), T::Incomplete);
  EXPECT_EQ(tail("0\r\n\r\n"), T::Ended);
  EXPECT_EQ(tail("0\r\nX-Trailer: 1\r\n"), T::Incomplete);
  EXPECT_EQ(tail("0\r\nX-Trailer: 1\r\n\r\n"), T::Ended);
  EXPECT_EQ(tail("xyz\r\n"), T::Malformed);           // not a size
  EXPECT_EQ(tail("5\r\nhelloXX"), T::Malformed);      // data not followed by CRLF
  EXPECT_EQ(tail("5\nhello\r\n"), T::Malformed);      // bare LF
  EXPECT_EQ(tail("1234567890abcdef0\r\n"), T::Malformed);   // absurd size
  // From an offset (after a head).
  const std::string req = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab";
  EXPECT_EQ(chunked_tail(req.data(), req.size(), req.find("4\r\n")), T::Incomplete);
}
