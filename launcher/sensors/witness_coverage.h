// Which witness would inspect a program's TLS writes in a default `kz run` (for `kz
// doctor`): "shim" for a dynamically linked program (the shim is preloaded into it),
// "uprobe" for one that carries its own TLS library (its writes never reach the shim's
// hooks), "none" for a static program without TLS symbols (Go, rustls: not inspected;
// blind mode sends their traffic through kz's proxy).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kz {

// "shim (...)" | "uprobe (...)" | "none (...)" for the ELF file at `path`.
std::string witness_for_program(const std::string& path);

// (name, witness) for the usual agent programs found on $PATH (curl, wget, python3,
// git, node).
std::vector<std::pair<std::string, std::string>> witness_coverage_examples();

}  // namespace kz
