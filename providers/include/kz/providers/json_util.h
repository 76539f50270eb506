#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "kz/result.h"

namespace kz {

// Overwrite every string inside `j` (keys excluded) before it is destroyed: parsed
// provider responses hold secret values in nlohmann's heap strings.
void wipe_json(nlohmann::json& j);

// Parse a response body; the error names `what` and the parse position, never the text.
Result<nlohmann::json> parse_json_body(const std::string& body, const std::string& what);

// Wipes its json on destruction.
class ScrubbedJson {
 public:
  explicit ScrubbedJson(nlohmann::json j) : j_(std::move(j)) {}
  ScrubbedJson(const ScrubbedJson&) = delete;
  ScrubbedJson& operator=(const ScrubbedJson&) = delete;
  ~ScrubbedJson() { wipe_json(j_); }
  nlohmann::json& get() { return j_; }
 private:
  nlohmann::json j_;
};

}  // namespace kz
