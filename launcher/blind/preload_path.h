// Where libkz_preload.so is: $KZ_PRELOAD_LIB, else next to the kz binary
// (<bin>/../lib/, as in the build tree and a `cmake --install` prefix), else the
// configured install directory.
#pragma once

#include <string>
#include <vector>

#include "kz/result.h"

namespace kz {

inline constexpr const char* kPreloadName = "libkz_preload.so";

std::vector<std::string> preload_candidates();
// The first candidate that exists, or an error listing where kz looked.
Result<std::string> find_preload_library();

}  // namespace kz
