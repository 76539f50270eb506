// Placeholder: being written.
#include "kz/providers/registry.h"
namespace kz {
ProviderSpec onepassword_provider_spec() {
  return {"1password", {}, [](const ProviderSettings&, const ProviderContext&)
                          -> Result<std::unique_ptr<Provider>> {
            return make_error(ErrorKind::Internal, "not implemented");
          }};
}
}  // namespace kz
