#include "core/host_facts.h"

#include <gtest/gtest.h>

namespace kz {
namespace {

TEST(HostFacts, Cgroup2MountsFromMountinfo) {
  const char* mi =
      "25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
      "31 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
      "33 31 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\n";
  EXPECT_EQ(parse_cgroup2_mounts(mi), std::vector<std::string>{"/sys/fs/cgroup/unified"});
}

TEST(HostFacts, Lockdown) {
  EXPECT_EQ(parse_lockdown("none [integrity] confidentiality\n"), "integrity");
  EXPECT_EQ(parse_lockdown("[none] integrity confidentiality\n"), "none");
  EXPECT_EQ(parse_lockdown(""), "unknown");
}

TEST(HostFacts, Capabilities) {
  EXPECT_TRUE(decode_capabilities(0).empty());
  auto caps = decode_capabilities((1ULL << 39) | (1ULL << 21));
  EXPECT_EQ(caps, (std::vector<std::string>{"CAP_SYS_ADMIN", "CAP_BPF"}));
}

}  // namespace
}  // namespace kz
