#include "kz/providers/json_util.h"

#include "kz/wipe.h"

namespace kz {

void wipe_json(nlohmann::json& j) {
  if (j.is_string()) {
    wipe(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& v : j) wipe_json(v);
  }
}

Result<nlohmann::json> parse_json_body(const std::string& body, const std::string& what) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return make_error(ErrorKind::Protocol, what + ": response is not valid JSON");
  return j;
}

}  // namespace kz
