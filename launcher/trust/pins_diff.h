// What changed between the pins the user trusted and the config as it is now. A change
// that lets a value go somewhere it could not go before (a new host, a method or path
// rule loosened or dropped, a new secret, a secret reading another source, another CA
// file or new contents in it) widens; everything else narrows. `kz run --blind` starts
// after narrowing and refuses after widening until `kz trust` records the new pins.
#pragma once

#include <string>
#include <vector>

#include "trust/project_pins.h"

namespace kz {

struct PinChange {
  bool widens = false;
  std::string text;   // one line, e.g. "API_KEY: + host evil.example"
};

struct PinsDiff {
  std::vector<PinChange> changes;   // widening first, in a stable order
  bool widens() const;
  bool empty() const { return changes.empty(); }
  // One change per line, "+ " before a widening and "- " before a narrowing; indent
  // prefixes each line.
  std::string format(const std::string& indent = "  ") const;
};

PinsDiff diff_pins(const ProjectPins& trusted, const ProjectPins& now);

}  // namespace kz
