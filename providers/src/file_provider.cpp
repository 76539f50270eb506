// file: ref is a path (~ expands to $HOME; relative paths start at the config's
// directory). One trailing newline is dropped, as editors and `echo >` add one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kz/providers/registry.h"
#include "kz/wipe.h"

namespace kz {
namespace {

constexpr std::size_t kMaxFileSecret = 1 << 20;

class FileProvider final : public Provider {
 public:
  explicit FileProvider(ProviderContext ctx) : ctx_(std::move(ctx)) {}
  Result<SecretValue> resolve(const SecretRef& ref, Deadline) override {
    std::string path = expand_home(ref.ref, ctx_.home);
    if (!path.empty() && path[0] != '/' && !ctx_.config_dir.empty()) path = ctx_.config_dir + "/" + path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int e = errno;
      return make_error(e == ENOENT ? ErrorKind::NotFound : e == EACCES ? ErrorKind::Denied : ErrorKind::Io,
                        "file provider: cannot open " + path + ": " + std::strerror(e));
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return make_error(ErrorKind::Io, "file provider: " + path + " is not a regular file");
    }
    if (static_cast<std::size_t>(st.st_size) > kMaxFileSecret) {
      ::close(fd);
      return make_error(ErrorKind::Io, "file provider: " + path + " is larger than 1 MiB");
    }
    ScrubbedString buf;
    buf.str().resize(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t got = 0;
    while (got < buf.str().size()) {
      ssize_t n = ::read(fd, buf.str().data() + got, buf.str().size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    auto v = SecretValue::from(std::string_view(buf.str().data(), got));
    v.trim_trailing_newline();
    if (v.empty()) return make_error(ErrorKind::NotFound, "file provider: " + path + " is empty");
    return v;
  }
 private:
  ProviderContext ctx_;
};

}  // namespace

ProviderSpec file_provider_spec() {
  return {"file", {}, [](const ProviderSettings&, const ProviderContext& ctx)
                          -> Result<std::unique_ptr<Provider>> {
            return std::unique_ptr<Provider>(std::make_unique<FileProvider>(ctx));
          }};
}

}  // namespace kz
