#include "cli/cli.h"

int main(int argc, char** argv) { return kz::cli_main(argc, argv); }
