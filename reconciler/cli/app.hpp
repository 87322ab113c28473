// The command line: global options, then one subcommand per command. Each command adds itself
// (its options and its action) through an AddCommand function; the binary's main lists them.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/common.hpp"

namespace wgf::cli {

struct Context {
    Globals g;
    int rc = kOk;  // the chosen command's exit code
    // The arguments, without the program name, before parsing: a command may take off a tail that
    // CLI11 must not see (`sandbox exec NODE COMMAND...`).
    std::vector<std::string> args;
    // The whole command line again, in this process, with other globals preset (the sandbox runs
    // each node's `wg-fleet ...` so).
    std::function<int(const std::vector<std::string>& args, const Globals& preset)> run;
};

using AddCommand = void (*)(CLI::App& app, Context& ctx);

// Parses args (without the program name) and runs the chosen command; returns its exit code.
int run(const std::vector<std::string>& args, const Globals& preset, std::span<const AddCommand> commands);

}  // namespace wgf::cli
