#pragma once

namespace kz {
// Parse the command line and run the chosen subcommand; returns the exit code.
int cli_main(int argc, char** argv);
}  // namespace kz
