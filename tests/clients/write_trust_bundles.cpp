// TrustBundles::write as a command, so that check_clients.sh can make a run's trust
// files from a test CA exactly as `kz run --blind` does, and hand them to the clients.
//
//   write_trust_bundles DIR CA_PEM_FILE
//
// DIR must exist (0700). Prints the variables to set, one NAME=VALUE a line (values may
// contain spaces: JAVA_TOOL_OPTIONS), and the write() time on stderr. Exit 1 on error.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "proxy/trust_bundles.h"

extern char** environ;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: write_trust_bundles DIR CA_PEM_FILE\n");
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "write_trust_bundles: cannot read %s\n", argv[2]);
    return 1;
  }
  std::stringstream pem;
  pem << in.rdbuf();
  auto t0 = std::chrono::steady_clock::now();
  auto tb = kz::TrustBundles::write(argv[1], pem.str(), environ);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!tb) {
    std::fprintf(stderr, "write_trust_bundles: %s\n", tb.error().message.c_str());
    return 1;
  }
  for (const auto& v : tb->vars()) std::printf("%s=%s\n", v.name.c_str(), v.value.c_str());
  std::fprintf(stderr, "write_trust_bundles: TrustBundles::write took %.2f ms\n", ms);
  return 0;
}
