// `version`: what `--version` prints, and with --json the same for tools (version 1 of its shape,
// README "JSON output").
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"

#ifndef WGF_VERSION
#define WGF_VERSION "0.0.0"
#endif

namespace wgf::cli {

void add_version(CLI::App& app, Context& ctx) {
    auto json = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand("version", "Print wg-fleet's version, as --version does");
    sub->add_flag("--json", *json, "As JSON: {\"version\": 1, \"name\": \"wg-fleet\", \"release\": RELEASE}");
    sub->callback([&ctx, json] {
        if (*json) std::cout << nlohmann::ordered_json{{"version", 1}, {"name", "wg-fleet"}, {"release", WGF_VERSION}}.dump(2) << "\n";
        else std::cout << "wg-fleet " WGF_VERSION "\n";
        ctx.rc = kOk;
    });
}

}  // namespace wgf::cli
