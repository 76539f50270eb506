// The `match` globs of bundle.yaml policies, over secret refs split at '/':
//   *    any run of characters within one segment ("db-*" matches "db-main")
//   **   as a whole segment: any number of segments, none included
//        ("secret/data/prod/**" matches secret/data/prod, secret/data/prod/db and
//        secret/data/prod/a/b#password)
// Everything else is literal and case-sensitive (refs are).
#pragma once

#include <string>
#include <string_view>

namespace kz::policy {

bool ref_glob_matches(std::string_view pattern, std::string_view ref);
// "" when the pattern is acceptable, else why not.
std::string ref_glob_problem(std::string_view pattern);

}  // namespace kz::policy
