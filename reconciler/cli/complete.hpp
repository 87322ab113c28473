// Hidden helpers for the shell completion scripts and the documentation tests: `complete` and
// `help-keys` (see complete.cpp).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/app.hpp"

namespace wgf::cli {

// The values a choice option (CLI::IsMember) accepts, in its order; none for any other option.
std::vector<std::string> option_choices(CLI::Option& o);

// `typed` is the command line as given, before any command took part of it off.
void add_hidden_helpers(CLI::App& app, Context& ctx, const std::vector<std::string>& typed);

}  // namespace wgf::cli
