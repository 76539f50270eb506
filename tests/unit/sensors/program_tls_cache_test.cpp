// The TLS tap's cache of programs with their own TLS library (sensors/program_tls_cache.h):
// kept between runs, keyed by the file's identity, trusted only when private to kz.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "sensors/program_tls_cache.h"

namespace kz {
namespace {

std::string temp_dir() {
  char t[] = "/tmp/kz-tls-cache-XXXXXX";
  return ::mkdtemp(t);
}

TEST(ProgramTlsCache, RemembersBetweenRunsByFileIdentity) {
  const std::string dir = temp_dir();
  const std::string prog = dir + "/prog";
  std::ofstream(prog) << "not really a program";
  auto id = program_file(prog);
  ASSERT_TRUE(id);
  {
    ProgramTlsCache c(dir + "/tls-programs");
    EXPECT_FALSE(c.find(*id));
    c.put(*id, ProgramProbes{{0x1000, 0x2000}, {1, 2}, 1});
  }
  ProgramTlsCache again(dir + "/tls-programs");
  auto p = again.find(*id);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->offsets, (std::vector<std::uint64_t>{0x1000, 0x2000}));
  EXPECT_EQ(p->writes, 1);
  ASSERT_EQ(again.own_tls().size(), 1u);
  // The file changed: another entry, not this one.
  std::ofstream(prog, std::ios::app) << " and more";
  EXPECT_FALSE(again.find(*program_file(prog)));
}

TEST(ProgramTlsCache, AFileOthersMayWriteIsNotUsed) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/tls-programs";
  {
    ProgramTlsCache c(path);
    c.put(ProgramFile{1, 2, 3, 4, 5}, ProgramProbes{{7}, {1}, 1});
  }
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  ProgramTlsCache c(path);
  EXPECT_TRUE(c.own_tls().empty());
  EXPECT_TRUE(c.path().empty());   // and not written either
}

}  // namespace
}  // namespace kz
