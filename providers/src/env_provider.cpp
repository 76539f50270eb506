// env: ref is the name of a variable in kz's own environment (e.g. set by a CI system).
#include <cstring>

#include "kz/providers/registry.h"

namespace kz {
namespace {

class EnvProvider final : public Provider {
 public:
  explicit EnvProvider(const Environment& env) : env_(env) {}
  Result<SecretValue> resolve(const SecretRef& ref, Deadline) override {
    const char* v = env_.get(ref.ref);
    if (v == nullptr)
      return make_error(ErrorKind::NotFound, "env provider: variable " + ref.ref + " is not set");
    if (*v == '\0')
      return make_error(ErrorKind::NotFound, "env provider: variable " + ref.ref + " is empty");
    return SecretValue::from(std::string_view(v, std::strlen(v)));
  }
  bool in_process() const override { return true; }

 private:
  const Environment& env_;
};

}  // namespace

ProviderSpec env_provider_spec() {
  return {"env", {}, [](const ProviderSettings&, const ProviderContext& ctx)
                         -> Result<std::unique_ptr<Provider>> {
            return std::unique_ptr<Provider>(std::make_unique<EnvProvider>(*ctx.env));
          }};
}

}  // namespace kz
