// One function per command; main.cpp wires them to the command line.
#pragma once

#include <string>

#include "cli/common.hpp"

namespace wgf::cli {

int cmd_check(const Globals& g);
int cmd_addresses(const Globals& g, bool json);
int cmd_render_hosts(const Globals& g, bool all);
int cmd_render_wg_quick(const Globals& g, const std::string& fleet);

}  // namespace wgf::cli
