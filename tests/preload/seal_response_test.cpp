// Sealing a token endpoint's answer (kz/preload/seal_response.h) through the inbound
// stream: on a connection armed by a client secret with mint_hosts, a response is held
// until it is complete, its access_token/refresh_token/id_token values go to the broker
// (Op::Seal) and come back as same-length tokens; nothing of it reaches the program
// before that, and what cannot be sealed fails the read.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kz/preload/inbound.h"
#include "kz/preload/seal_response.h"

namespace kz::preload {
namespace {

struct Sealer {
  std::vector<std::string> sealed;   // the values the broker was given
  bool refuse = false;
  static bool seal(void* ctx, ConnState* st, unsigned char* p, std::size_t len) {
    auto* self = static_cast<Sealer*>(ctx);
    if (st->seal_secret != 7 || self->refuse) return false;
    self->sealed.emplace_back(reinterpret_cast<char*>(p), len);
    const std::string tok = "KZ_TOK_" + std::string(len - 7, 'S');
    std::memcpy(p, tok.data(), len);
    return true;
  }
};

struct Armed {
  std::unique_ptr<ConnTable> t = std::make_unique<ConnTable>();
  const void* key = reinterpret_cast<const void*>(0x7100);
  ConnState* st = nullptr;
  Sealer sealer;
  std::string out;

  explicit Armed(bool arm = true) {
    st = t->find_or_create(key);
    Fingerprint fp;   // the client secret's print (a swap gave it): the stream is active
    fp.base = 3;
    fp.hash = 1;
    fp.len = 40;
    st->add_fingerprint(fp);
    if (arm) st->seal_secret = 7;
  }
  ~Armed() { t->remove(key); }
  BrokerOps ops() {
    BrokerOps b;   // only sealing: no redaction, no swaps on the way in
    b.seal = &Sealer::seal;
    b.ctx = &sealer;
    return b;
  }
  void feed(const std::string& bytes) {
    stream_feed(*st, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), ops());
    unsigned char tmp[4096];
    for (std::size_t k; (k = stream_take(st->in, tmp, sizeof tmp, false)) > 0;) out.append(reinterpret_cast<char*>(tmp), k);
  }
};

const std::string kAccess = "at1_realAccessTokenValue0123456789abcdefXYZ";
const std::string kRefresh = "rt1_realRefreshTokenValue0123456789abcdefXY";

std::string body() {
  return R"({"access_token": ")" + kAccess + R"(","token_type":"Bearer","expires_in":3600,"refresh_token" : ")" +
         kRefresh + R"("})";
}

TEST(SealResponse, ContentLengthBodyIsHeldWholeThenSealedInPlace) {
  Armed a;
  const std::string b = body();
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(b.size()) + "\r\n\r\n" + b;
  const std::size_t cut = resp.find(kAccess) + 10;   // a read boundary inside the token
  a.feed(resp.substr(0, cut));
  EXPECT_EQ(a.out, "") << "bytes of an unsealed answer reached the program";
  a.feed(resp.substr(cut));
  ASSERT_EQ(a.out.size(), resp.size());
  EXPECT_EQ(a.out.find(kAccess), std::string::npos);
  EXPECT_EQ(a.out.find(kRefresh), std::string::npos);
  EXPECT_NE(a.out.find(R"("access_token": "KZ_TOK_SSS)"), std::string::npos) << a.out;
  EXPECT_EQ(a.sealer.sealed, (std::vector<std::string>{kAccess, kRefresh}));
}

TEST(SealResponse, ChunkBoundaryInsideTheToken) {
  Armed a;
  const std::string b = body();
  const std::size_t cut = b.find(kAccess) + 5;
  std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  char sz[32];
  std::snprintf(sz, sizeof sz, "%zx\r\n", cut);
  resp += sz + b.substr(0, cut) + "\r\n";
  std::snprintf(sz, sizeof sz, "%zx\r\n", b.size() - cut);
  resp += sz + b.substr(cut) + "\r\n0\r\n\r\n";
  a.feed(resp);
  ASSERT_EQ(a.out.size(), resp.size());
  EXPECT_EQ(a.out.find(kAccess.substr(5)), std::string::npos) << a.out;
  ASSERT_EQ(a.sealer.sealed.size(), 2u);
  EXPECT_EQ(a.sealer.sealed[0], kAccess);
}

TEST(SealResponse, WhatCannotBeSealedFailsTheRead) {
  for (const std::string& b : {std::string(R"({"access_token":"at\u0031_escaped_value_0123456789abcdef"})"),
                              body()}) {
    Armed a;
    a.sealer.refuse = b == body();   // the broker refuses
    a.feed("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b);
    EXPECT_TRUE(a.st->in.failed);
    EXPECT_EQ(a.out, "");
  }
}

TEST(SealResponse, NotArmedPassesUnchanged) {
  Armed a(false);
  const std::string b = body();
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
  a.feed(resp);
  EXPECT_EQ(a.out, resp);
  EXPECT_TRUE(a.sealer.sealed.empty());
}

TEST(SealResponse, NamesThatAreNotMembersAndNonStringValues) {
  Armed a;
  std::string b = R"({"error_description":"\"access_token\" is below","access_token":null,"id_token":")" + kAccess +
                  R"("})";
  b = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b;
  std::vector<unsigned char> buf(b.begin(), b.end());
  ASSERT_TRUE(seal_response(buf.data(), buf.size(), a.st, a.ops()));
  EXPECT_EQ(a.sealer.sealed, std::vector<std::string>{kAccess});
}

std::string message(const std::string& head_fields, const std::string& b) {
  return "HTTP/1.1 200 OK\r\n" + head_fields + "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
}

// The agent writes the token request, so it picks the answer's format: a token under any
// name, or form-encoded (GitHub's /login/oauth/access_token without Accept: application/json),
// is sealed all the same.
TEST(SealResponse, FormEncodedAnswerIsSealed) {
  Armed a;
  const std::string b = "access_token=" + kAccess + "&scope=repo%2Cgist&token_type=bearer&refresh_token=" + kRefresh +
                        "&refresh_token_expires_in=15811200";
  const std::string resp = message("Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n", b);
  a.feed(resp);
  ASSERT_EQ(a.out.size(), resp.size()) << "the answer did not reach the program";
  EXPECT_EQ(a.out.find(kAccess), std::string::npos) << a.out;
  EXPECT_EQ(a.out.find(kRefresh), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("access_token=KZ_TOK_SSS"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("&scope=repo%2Cgist&token_type=bearer&"), std::string::npos) << a.out;
  EXPECT_EQ(a.sealer.sealed, (std::vector<std::string>{kAccess, kRefresh}));
}

TEST(SealResponse, LongValuesOfOtherMembersAreSealedKnownOnesPass) {
  Armed a;
  const std::string desc = "a long description that is not a secret";
  const std::string b = R"({"token":")" + kAccess + R"(","data":{"creds":[")" + kRefresh +
                        R"(",1,true,null],"n":-1.5e3},"token_type":"Bearer","error_description":")" + desc +
                        R"(","short":"abc"})";
  const std::string resp = message("Content-Type: application/vnd.api+json\r\n", b);
  a.feed(resp);
  ASSERT_EQ(a.out.size(), resp.size()) << "the answer did not reach the program";
  EXPECT_EQ(a.out.find(kAccess), std::string::npos) << a.out;
  EXPECT_EQ(a.out.find(kRefresh), std::string::npos) << a.out;
  EXPECT_NE(a.out.find(desc), std::string::npos) << a.out;
  EXPECT_EQ(a.sealer.sealed, (std::vector<std::string>{kAccess, kRefresh}));
}

TEST(SealResponse, NoBodyPasses) {
  Armed a;
  const std::string resp = "HTTP/1.1 204 No Content\r\nLocation: /done\r\n\r\n";
  a.feed(resp);
  EXPECT_EQ(a.out, resp);
}

TEST(SealResponse, AnswersThatCouldHideATokenFailTheRead) {
  const std::string form = "Content-Type: application/x-www-form-urlencoded\r\n";
  const std::string json = "Content-Type: application/json\r\n";
  const std::vector<std::string> bad = {
      message("Content-Type: text/plain\r\n", kAccess),
      message("Content-Type: text/html\r\n", "<p>" + kAccess + "</p>"),
      message("", "access_token=" + kAccess),                     // no type, not JSON
      message(form, "token=" + kAccess + "&token_type=bearer"),  // a long value of another name
      message(form, kAccess),                                    // a bare word
      message(form, "access_token=" + kAccess.substr(0, 20) + "%2F" + kAccess.substr(20)),
      message(json, R"({"token":")" + kAccess + R"(")"),       // cut off
      message(json, R"({"token":")" + kAccess + R"("} trailing)"),
      message(json, R"({"token":)" + std::string(40, 'a') + "}"),   // a bare word is not JSON
      message(json, R"({"token":"at\u0031_escaped_value_0123456789abcdef"})"),
      message("Location: https://app.test/cb#access_token=" + kAccess + "&token_type=bearer\r\n", ""),
      message("Location: https://app.test/cb?access_token=" + kAccess + "\r\n", ""),
      message("Location: https://app.test/cb?x=" + kAccess + "\r\n", ""),
  };
  for (const std::string& resp : bad) {
    Armed a;
    a.feed(resp);
    EXPECT_TRUE(a.st->in.failed) << resp;
    EXPECT_EQ(a.out.find(kAccess.substr(0, 16)), std::string::npos) << resp;
  }
}

}  // namespace
}  // namespace kz::preload
