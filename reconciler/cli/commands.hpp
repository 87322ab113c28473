// One function per command; main.cpp wires them to the command line.
#pragma once

#include <string>
#include <vector>

#include "cli/common.hpp"

namespace wgf::cli {

int cmd_check(const Globals& g);
int cmd_addresses(const Globals& g, bool json);
int cmd_render_hosts(const Globals& g, bool all);
int cmd_render_wg_quick(const Globals& g, const std::string& fleet);
int cmd_plan(const Globals& g, bool json, bool detailed_exitcode, const std::vector<std::string>& adopt = {});
int cmd_apply(const Globals& g, const std::vector<std::string>& adopt = {});
int cmd_status(const Globals& g, bool json);
int cmd_keygen(const Globals& g);
int cmd_watch(const Globals& g, int interval_s);
int cmd_sandbox(const Globals& g, const std::string& action, const std::vector<std::string>& args, const std::string& name);

}  // namespace wgf::cli
