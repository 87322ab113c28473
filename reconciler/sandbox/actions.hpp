// The sandbox's actions, one function each (sandbox.cpp), as its command line (command.cpp) runs
// them. Each returns the exit code; `name` is the sandbox's.
#pragma once

#include <string>
#include <vector>

#include "cli/context.hpp"

namespace wgf::sandbox {

struct UpOptions {
    bool verbose = false;
    bool prune = false;
};

int sandbox_up(const cli::Context& ctx, const cli::Globals& given, const std::string& name, const UpOptions& opts);
int sandbox_plan(const cli::Context& ctx, const std::string& name, const std::string& file_arg, bool detailed, bool json);
int sandbox_test(const cli::Globals& g, const std::string& name, bool json);
int sandbox_exec(const cli::Context& ctx, const std::string& name, const std::string& node_name, const std::vector<std::string>& command);
int sandbox_down(const std::string& name, bool quiet);
// Whether this process may make network namespaces; says why not on stderr.
bool need_root();

}  // namespace wgf::sandbox
