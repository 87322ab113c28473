// `wg-fleet sandbox`: the whole fleet in network namespaces on this machine (up, test, exec,
// down). A module above cli/: it adds its own subcommand, and runs each node's wg-fleet through
// the command line with the node's settings preset, so the main command line carries no options
// for it.
#pragma once

#include "cli/context.hpp"

namespace wgf::sandbox {

void add_command(CLI::App& app, cli::Context& ctx);

}  // namespace wgf::sandbox
