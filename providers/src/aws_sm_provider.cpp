// Placeholder: being written.
#include "kz/providers/registry.h"
namespace kz {
ProviderSpec aws_sm_provider_spec() {
  return {"aws-sm", {}, [](const ProviderSettings&, const ProviderContext&)
                          -> Result<std::unique_ptr<Provider>> {
            return make_error(ErrorKind::Internal, "not implemented");
          }};
}
}  // namespace kz
