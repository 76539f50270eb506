// Which programs the shim serves and which go to the fallback proxy, on real executables:
// the system's own, and small programs compiled here to stand for each case.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "redirect/program_route.h"

namespace fs = std::filesystem;

namespace kz {
namespace {

class ProgramRouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kz-route-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Compiles `code` with gcc and `flags`; "" when gcc is missing or fails.
  std::string compile(const std::string& name, const std::string& code, const std::string& flags) {
    const fs::path src = dir_ / (name + ".c"), out = dir_ / name;
    std::ofstream(src) << code;
    const std::string cmd = "gcc -O1 -o " + out.string() + " " + src.string() + " " + flags + " 2>/dev/null";
    return std::system(cmd.c_str()) == 0 ? out.string() : "";
  }
  fs::path dir_;
};

TEST_F(ProgramRouteTest, SystemProgramsLinkedToSharedTlsGoToTheShim) {
  for (const char* p : {"/usr/bin/curl", "/bin/bash"}) {
    const ProgramClass c = classify_executable(p);
    EXPECT_EQ(c.route, Route::Shim) << p << ": " << c.reason;
  }
  // Python dlopens libssl through its _ssl module: the shim's hooks still apply.
  const ProgramClass py = classify_executable("/usr/bin/python3");
  EXPECT_EQ(py.route, Route::Shim) << py.reason;
}

TEST_F(ProgramRouteTest, JavaGoesToTheProxy) {
  const std::string java = fs::exists("/usr/bin/java") ? fs::canonical("/usr/bin/java").string() : "";
  if (java.empty()) GTEST_SKIP() << "SKIP: java is not installed";
  const ProgramClass c = classify_executable(java);
  EXPECT_EQ(c.route, Route::Proxy);
  EXPECT_NE(c.reason.find("Java"), std::string::npos) << c.reason;
}

TEST_F(ProgramRouteTest, StaticProgramGoesToTheProxy) {
  const std::string bin = compile("static", "int main(void){return 0;}", "-static");
  if (bin.empty()) GTEST_SKIP() << "SKIP: cannot link statically here";
  const ProgramClass c = classify_executable(bin);
  EXPECT_EQ(c.route, Route::Proxy);
  EXPECT_NE(c.reason.find("statically"), std::string::npos) << c.reason;
}

TEST_F(ProgramRouteTest, ProgramDefiningSslWriteGoesToTheProxy) {
  // A dynamic program with its own SSL_write (as node exports its bundled OpenSSL's).
  const std::string bin = compile("own_ssl", "int SSL_write(void*s,const void*b,int n){(void)s;(void)b;return n;}\n"
                                             "int main(void){return SSL_write(0,0,0);}", "-rdynamic");
  ASSERT_FALSE(bin.empty());
  const ProgramClass c = classify_executable(bin);
  EXPECT_EQ(c.route, Route::Proxy);
  EXPECT_NE(c.reason.find("SSL_write"), std::string::npos) << c.reason;
  // Stripped of .symtab and not exported: the version banner still gives it away.
  const std::string banner = compile("banner", "const char* v = \"OpenSSL 3.0.99 1 Jan 2099\";\n"
                                               "int main(void){return v[0] == 'x';}", "-s");
  ASSERT_FALSE(banner.empty());
  const ProgramClass b = classify_executable(banner);
  EXPECT_EQ(b.route, Route::Proxy);
  EXPECT_NE(b.reason.find("OpenSSL"), std::string::npos) << b.reason;
}

TEST_F(ProgramRouteTest, PlainDynamicProgramGoesToTheShim) {
  const std::string bin = compile("plain", "int main(void){return 0;}", "");
  ASSERT_FALSE(bin.empty());
  EXPECT_EQ(classify_executable(bin).route, Route::Shim);
}

TEST_F(ProgramRouteTest, GoBuildInfoGoesToTheProxy) {
  // The build-info magic every Go binary carries, in an otherwise plain dynamic program.
  const std::string bin = compile("gobuild", "const char m[] = \"\\xff Go buildinf:\";\n"
                                             "int main(void){return m[1] == 'x';}", "");
  ASSERT_FALSE(bin.empty());
  const ProgramClass c = classify_executable(bin);
  EXPECT_EQ(c.route, Route::Proxy);
  EXPECT_NE(c.reason.find("Go"), std::string::npos) << c.reason;
}

TEST_F(ProgramRouteTest, ScriptsFollowTheirInterpreter) {
  const fs::path sh = dir_ / "run.sh";
  std::ofstream(sh) << "#!/bin/sh -e\necho hi\n";
  const ProgramClass c = classify_executable(sh.string());
  EXPECT_EQ(c.route, Route::Shim);
  EXPECT_NE(c.reason.find("script run by /bin/sh"), std::string::npos) << c.reason;
}

TEST_F(ProgramRouteTest, UnreadableOrForeignFilesGoToTheProxy) {
  EXPECT_EQ(classify_executable((dir_ / "missing").string()).route, Route::Proxy);
  const fs::path junk = dir_ / "junk";
  std::ofstream(junk) << "not a program at all, just text that is long enough to be read";
  EXPECT_EQ(classify_executable(junk.string()).route, Route::Proxy);
  // Truncated ELF header.
  const fs::path cut = dir_ / "cut";
  std::ofstream(cut) << "\x7f" "ELF\x02\x01\x01";
  EXPECT_EQ(classify_executable(cut.string()).route, Route::Proxy);
}

TEST_F(ProgramRouteTest, RouterReportsEachProgramOfAProcessOnce) {
  int reports = 0;
  std::string seen;
  ProgramRouter router(false, [&](pid_t pid, const std::string& exe, const ProgramClass& c) {
    EXPECT_EQ(pid, getpid());
    seen = exe;
    ++reports;
    (void)c;
  });
  const Route r1 = router.route(getpid());
  const Route r2 = router.route(getpid());
  EXPECT_EQ(r1, r2);
  EXPECT_EQ(reports, 1);
  EXPECT_EQ(seen, fs::canonical("/proc/self/exe").string());
  // A process that is gone: routed to the proxy (which then has nothing to do).
  ProgramRouter all(true, [&](pid_t, const std::string&, const ProgramClass& c) {
    EXPECT_EQ(c.route, Route::Proxy);
  });
  EXPECT_EQ(all.route(getpid()), Route::Proxy);
}

}  // namespace
}  // namespace kz
