// File offsets of functions an ELF file defines, as uprobes need them: the symbol's
// address translated through the executable PT_LOAD segment that holds it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kz {

// name -> file offset, for each of `names` that `path` defines (.dynsym or .symtab,
// STT_FUNC, not undefined). Names it does not define, and files that are not 64-bit
// ELF, give no entry.
std::map<std::string, std::uint64_t> elf_function_offsets(const std::string& path,
                                                          const std::vector<std::string>& names);

}  // namespace kz
