// kz trust's pieces: the pins of a config, the diff that tells widening from narrowing,
// the store outside the workspace, and the check `kz run --blind` makes with them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "test_support.h"
#include "trust/pins_diff.h"
#include "trust/project_pins.h"
#include "trust/trust_check.h"
#include "trust/trust_store.h"

namespace kz {
namespace {

// A project directory with a config and a CA file, and a store directory apart from it.
struct Project {
  test::TempDir dir;
  std::string ca = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  TrustStore store{dir.file("store/keyzero/trust")};

  Config load(const std::string& secrets, bool with_ca = true) {
    std::string text = "[secrets]\n" + secrets + "\n";
    if (with_ca) text += "[blind]\nca_file = \"ca.pem\"\n";
    const std::string path = dir.write(".keyzero.toml", text);
    auto c = load_config_file(path);
    EXPECT_TRUE(c) << (c ? "" : c.error().message);
    return *c;
  }
};

const char* kApi = R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com"], methods = ["GET"], paths = ["/v1/"] })";

std::string diff_text(const Config& trusted, const Config& now) {
  return diff_pins(pins_of(trusted), pins_of(now)).format("");
}

TEST(ProjectPins, RecordBindingsSourceAndCaHash) {
  Project p;
  const ProjectPins pins = pins_of(p.load(kApi));
  ASSERT_EQ(pins.secrets.count("API"), 1u);
  const SecretPin& s = pins.secrets.at("API");
  EXPECT_EQ(s.source, "env:SRC");
  EXPECT_EQ(s.hosts, std::vector<std::string>{"api.example.com"});
  EXPECT_EQ(s.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(pins.ca_file, p.ca);
  EXPECT_EQ(pins.ca_sha256.size(), 64u);
  EXPECT_EQ(pins.config_sha256.size(), 64u);
  auto back = pins_from_json(pins_to_json(pins));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->secrets.at("API"), s);
  EXPECT_EQ(back->ca_sha256, pins.ca_sha256);
}

TEST(ProjectPins, AnExecRefIsKeptOnlyAsItsHash) {
  Project p;
  const ProjectPins pins = pins_of(p.load(R"(T = { provider = "exec", ref = "pass show --password hunter2", hosts = ["a.example"] })"));
  EXPECT_EQ(pins.secrets.at("T").source.rfind("exec:sha256:", 0), 0u);
  EXPECT_EQ(pins_to_json(pins).dump().find("hunter2"), std::string::npos);
}

TEST(PinsDiff, WideningChangesAreFlagged) {
  Project p;
  const Config trusted = p.load(kApi);
  struct Case {
    const char* secrets;
    const char* expect;
  } cases[] = {
      {R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com", "evil.example"], methods = ["GET"], paths = ["/v1/"] })",
       "+ API: host evil.example"},
      {R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com"], paths = ["/v1/"] })",
       "+ API: any method (was only GET)"},
      {R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com"], methods = ["GET"], paths = ["/v1/", "/admin/"] })",
       "+ API: path /admin/"},
      {R"(API = { provider = "env", ref = "OTHER", hosts = ["api.example.com"], methods = ["GET"], paths = ["/v1/"] })",
       "+ API: read from env:OTHER (was env:SRC)"},
  };
  for (const auto& c : cases) {
    const Config now = p.load(c.secrets);
    const PinsDiff d = diff_pins(pins_of(trusted), pins_of(now));
    EXPECT_TRUE(d.widens()) << c.secrets;
    EXPECT_NE(d.format("").find(c.expect), std::string::npos) << d.format("");
  }
  const std::string added = std::string(kApi) + "\n" + R"(EXTRA = { provider = "env", ref = "SRC", hosts = ["evil.example"] })";
  EXPECT_NE(diff_text(trusted, p.load(added)).find("+ new secret EXTRA (env:SRC) to host(s) evil.example"),
            std::string::npos);
}

TEST(PinsDiff, AnAwsSigningScopeChangedWidens) {
  Project p;
  const char* kAws = R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAIOSFODNN7EXAMPLE", services = ["s3"] })";
  const Config trusted = p.load(kAws);
  for (const char* now : {
           R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAIOSFODNN7EXAMPLE" })",
           R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAIOSFODNN7EXAMPLE", services = ["s3", "iam"] })",
           R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAOTHERKEYID000001", services = ["s3"] })",
           R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"] })"}) {
    const PinsDiff d = diff_pins(pins_of(trusted), pins_of(p.load(now)));
    EXPECT_TRUE(d.widens()) << now;
  }
  EXPECT_NE(diff_text(trusted, p.load(R"(K = { provider = "env", ref = "SRC", hosts = ["*.amazonaws.com"], sign = "sigv4", access_key_id = "AKIAIOSFODNN7EXAMPLE" })"))
                .find("(sign sigv4 as AKIAIOSFODNN7EXAMPLE, services any, regions any)"),
            std::string::npos);
  EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(p.load(kAws))).empty());
}

// approve = ... (issue 19 part 5): an agent that edits the config to drop or loosen an
// approval lets a value go without a person; adding one only narrows.
TEST(PinsDiff, AnApprovalDroppedOrLoosenedWidens) {
  Project p;
  const char* kHeld = R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"], approve = "every" })";
  const Config trusted = p.load(kHeld);
  for (const char* now : {
           R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"] })",
           R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"], approve = true })",
           R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"], approve = { methods = ["POST"] } })"}) {
    EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(p.load(now))).widens()) << now;
  }
  EXPECT_NE(diff_text(trusted, p.load(R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"] })"))
                .find("K: approve removed (was every ttl=300)"),
            std::string::npos);
  const Config none = p.load(R"(K = { provider = "env", ref = "SRC", hosts = ["api.example.com"] })");
  const PinsDiff added = diff_pins(pins_of(none), pins_of(trusted));
  EXPECT_FALSE(added.widens());
  EXPECT_FALSE(added.empty());
  // The record keeps it.
  auto back = pins_from_json(pins_to_json(pins_of(trusted)));
  ASSERT_TRUE(back);
  EXPECT_TRUE(diff_pins(*back, pins_of(trusted)).empty());
}

// Keys that widen what a minted credential or a rotating secret reaches: another scope or
// audience, another client_auth, a different refresh_skew; a refresh removed or made longer,
// a longer max_stale. Every change of them is a change of source: widening.
TEST(PinsDiff, MintingAndRotationKeysArePinned) {
  Project p;
  auto minted = [](const std::string& extra) {
    return "[secrets.T]\nkind = \"oauth2-client-credentials\"\ntoken_url = \"https://auth.example.com/token\"\n"
           "client_id = \"agent\"\nclient_secret = { provider = \"env\", ref = \"CS\" }\nhosts = [\"api.example.com\"]\n" +
           extra;
  };
  auto load = [&](const std::string& text) {
    const std::string path = p.dir.write(".keyzero.toml", text);
    auto c = load_config_file(path);
    EXPECT_TRUE(c) << (c ? "" : c.error().message) << text;
    return c ? *c : Config{};
  };
  const Config trusted = load(minted("scopes = [\"read\"]\n"));
  for (const std::string& now : {minted("scopes = [\"read\", \"admin\"]\n"), minted(""),
                                 minted("scopes = [\"read\"]\naudience = \"https://other\"\n"),
                                 minted("scopes = [\"read\"]\nclient_auth = \"post\"\n"),
                                 minted("scopes = [\"read\"]\nrefresh_skew = \"10m\"\n")}) {
    EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(load(now))).widens()) << now;
  }
  EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(load(minted("scopes = [\"read\"]\n")))).empty());

  const char* kRot = R"(R = { provider = "env", ref = "SRC", hosts = ["api.example.com"], refresh = "5m", max_stale = "10m" })";
  const Config rot = p.load(kRot);
  for (const char* now : {R"(R = { provider = "env", ref = "SRC", hosts = ["api.example.com"] })",
                          R"(R = { provider = "env", ref = "SRC", hosts = ["api.example.com"], refresh = "1h", max_stale = "10m" })",
                          R"(R = { provider = "env", ref = "SRC", hosts = ["api.example.com"], refresh = "5m", max_stale = "1h" })"}) {
    EXPECT_TRUE(diff_pins(pins_of(rot), pins_of(p.load(now))).widens()) << now;
  }
  EXPECT_TRUE(diff_pins(pins_of(rot), pins_of(p.load(kRot))).empty());
}

TEST(PinsDiff, ACaFileSwappedOrRewrittenWidens) {
  Project p;
  const ProjectPins trusted = pins_of(p.load(kApi));
  p.dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n");
  PinsDiff d = diff_pins(trusted, pins_of(p.load(kApi)));
  EXPECT_TRUE(d.widens());
  EXPECT_NE(d.format("").find("its contents changed"), std::string::npos);
  p.dir.write("other-ca.pem", "x");
  Config moved = p.load(kApi, false);
  moved.blind.ca_file = p.dir.file("other-ca.pem");
  EXPECT_TRUE(diff_pins(trusted, pins_of(moved)).widens());
  EXPECT_FALSE(diff_pins(trusted, pins_of(p.load(kApi, false))).widens()) << "no CA file: fewer trust anchors";
}

TEST(PinsDiff, NarrowingIsNotWidening) {
  Project p;
  const Config trusted = p.load(std::string(kApi) + "\n" + R"(B = { provider = "env", ref = "S2", hosts = ["b.example", "c.example"] })");
  const Config now = p.load(R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com"], methods = ["GET"], paths = ["/v1/x/", "/v1/"] })");
  // Adding a path prefix inside the old one is still a new string: kz does not reason
  // about prefixes, so that counts as widening. Here: only removals.
  const Config narrower = p.load(kApi);
  const PinsDiff d = diff_pins(pins_of(trusted), pins_of(narrower));
  EXPECT_FALSE(d.widens()) << d.format("");
  EXPECT_NE(d.format("").find("- secret B removed"), std::string::npos);
  EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(now)).widens());
  EXPECT_TRUE(diff_pins(pins_of(trusted), pins_of(trusted)).empty());
}

TEST(TrustStore, SavesOutsideTheProjectAndLoadsBack) {
  Project p;
  const Config cfg = p.load(kApi);
  auto none = p.store.load(cfg.path);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(p.store.save(pins_of(cfg)));
  struct stat st {};
  ASSERT_EQ(stat(p.store.path_for(cfg.path).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(p.store.dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto back = p.store.load(cfg.path);
  ASSERT_TRUE(back && back->has_value());
  EXPECT_TRUE(diff_pins(**back, pins_of(cfg)).empty());
}

TEST(TrustStore, ADamagedRecordIsAnErrorNotAFirstUse) {
  Project p;
  const Config cfg = p.load(kApi);
  ASSERT_TRUE(p.store.save(pins_of(cfg)));
  std::ofstream(p.store.path_for(cfg.path)) << "{\"version\": 1, \"secrets\": 7}";
  auto r = p.store.load(cfg.path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("damaged"), std::string::npos);
  EXPECT_FALSE(check_project_trust(cfg, p.store));
}

TEST(TrustStore, DefaultLocationFollowsXdgConfigHome) {
  setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
  auto s = TrustStore::open_default();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dir(), "/tmp/xdg-test/keyzero/trust");
  unsetenv("XDG_CONFIG_HOME");
  setenv("HOME", "/home/someone", 1);
  s = TrustStore::open_default();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dir(), "/home/someone/.config/keyzero/trust");
}

TEST(TrustCheck, FirstUseRecordsThenWideningIsRefusedAndNarrowingPasses) {
  Project p;
  auto c = check_project_trust(p.load(kApi), p.store);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->outcome, TrustOutcome::FirstUse);
  c = check_project_trust(p.load(kApi), p.store);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->outcome, TrustOutcome::Unchanged);
  c = check_project_trust(
      p.load(R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com", "evil.example"], methods = ["GET"], paths = ["/v1/"] })"),
      p.store);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->outcome, TrustOutcome::Widened);
  EXPECT_NE(widened_message(*c).find("+ API: host evil.example"), std::string::npos);
  EXPECT_NE(widened_message(*c).find("kz trust"), std::string::npos);
  c = check_project_trust(p.load(R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com"], methods = ["GET"], paths = ["/v1/"] })", false), p.store);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->outcome, TrustOutcome::Narrowed);
  // The widening was not recorded by being refused: it is refused again.
  c = check_project_trust(
      p.load(R"(API = { provider = "env", ref = "SRC", hosts = ["api.example.com", "evil.example"], methods = ["GET"], paths = ["/v1/"] })"),
      p.store);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->outcome, TrustOutcome::Widened);
}

}  // namespace
}  // namespace kz
