// The command line: global options, then one subcommand per command. Each command adds itself
// (its options and its action) through an AddCommand function; the binary's main lists them.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "cli/context.hpp"

namespace wgf::cli {

// Parses args (without the program name) and runs the chosen command; returns its exit code.
int run(const std::vector<std::string>& args, const Globals& preset, std::span<const AddCommand> commands);

}  // namespace wgf::cli
