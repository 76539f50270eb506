// exec: ref is a shell command (run with /bin/sh -c, like `pass show app/key`) whose
// stdout is the value; one trailing newline is dropped. A non-zero exit is an error that
// quotes the first line of its stderr.
#include "kz/providers/registry.h"
#include "kz/providers/subprocess.h"

namespace kz {
namespace {


class ExecProvider final : public Provider {
 public:
  Result<SecretValue> resolve(const SecretRef& ref, Deadline deadline) override {
    const std::string what = "exec provider (" + ref.name + ")";
    SubprocessOptions opts;
    opts.argv = {"/bin/sh", "-c", ref.ref};
    auto r = run_subprocess(opts, deadline, what);
    if (!r) return r.take_error();
    if (r->term_signal != 0)
      return make_error(ErrorKind::Io, what + ": command killed by signal " + std::to_string(r->term_signal));
    if (r->exit_code != 0) {
      std::string msg = what + ": command exited with status " + std::to_string(r->exit_code);
      if (!r->err.empty()) msg += ": " + first_line(r->err);
      return make_error(ErrorKind::Io, msg);
    }
    auto v = SecretValue::from(r->out.str());
    v.trim_trailing_newline();
    if (v.empty()) return make_error(ErrorKind::NotFound, what + ": command printed nothing");
    return v;
  }
};

}  // namespace

ProviderSpec exec_provider_spec() {
  return {"exec", {}, [](const ProviderSettings&, const ProviderContext&)
                          -> Result<std::unique_ptr<Provider>> {
            return std::unique_ptr<Provider>(std::make_unique<ExecProvider>());
          }};
}

}  // namespace kz
