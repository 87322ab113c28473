// What a command's action gets from the command line (cli/app.hpp parses it): the global options,
// the arguments, and where the exit code goes. No CLI11 here: only the files that add commands to
// the command line include it (wiring.cpp, app.cpp, the sandbox's command.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/common.hpp"

namespace CLI {
class App;
}  // namespace CLI

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

}  // namespace wgf::cli
