// The commands of cli/: each adds its subcommand to the command line (AddCommand) and runs
// through its cmd_* function.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/plan_text.hpp"

namespace wgf::cli {

void add_check(CLI::App& app, Context& ctx);
void add_addresses(CLI::App& app, Context& ctx);
void add_render(CLI::App& app, Context& ctx);
void add_plan(CLI::App& app, Context& ctx);
void add_apply(CLI::App& app, Context& ctx);
void add_status(CLI::App& app, Context& ctx);
void add_keygen(CLI::App& app, Context& ctx);
void add_rotate(CLI::App& app, Context& ctx);
void add_watch(CLI::App& app, Context& ctx);
void add_serve(CLI::App& app, Context& ctx);
void add_version(CLI::App& app, Context& ctx);
void add_confirm(CLI::App& app, Context& ctx);

// apply --try [SECONDS], --probe, --manual, --force-rolled-back (cli/try.hpp).
struct TryOptions {
    std::optional<int> seconds;  // unset: a plain apply
    std::string probe;           // "" none
    bool manual = false;
    bool force_rolled_back = false;  // apply a desired state a rollback took back, without a try
};

int cmd_check(const Globals& g, output::Format format = output::Format::text);
int cmd_addresses(const Globals& g, output::Format format);
int cmd_render_hosts(const Globals& g, bool all, bool json = false);
int cmd_render_wg_quick(const Globals& g, const std::string& fleet, bool json = false);
int cmd_render_nixos(const Globals& g, const std::string& all_dir, bool json = false);
int cmd_render_networkd(const Globals& g, const std::string& dir, bool json = false);
int cmd_plan(const Globals& g, output::Format format, bool detailed_exitcode, const std::vector<std::string>& adopt = {},
             output::Color color = output::Color::auto_);
int cmd_apply(const Globals& g, const std::vector<std::string>& adopt = {}, output::Format format = output::Format::text,
              output::Color color = output::Color::auto_, const TryOptions& tried = {});
int cmd_confirm(const Globals& g);
int cmd_status(const Globals& g, output::Format format, const std::string& output_file = {}, bool check = false);
int cmd_keygen(const Globals& g, output::Format format);
// rotate: the switch comes this many seconds after the command by default, two ticks of watch's
// default --interval (30 s), so every node's watch has seen the next key before.
inline constexpr int kRotateDelay = 60;
int cmd_rotate(const Globals& g, const std::string& fleet, const std::string& at);
int cmd_watch(const Globals& g, int interval_s, int try_s = 0);
int cmd_serve(const Globals& g, int interval_s, const std::vector<std::string>& listen_args);
// serve --import-edge-state, --import-sync-state (cmd_serve.cpp) and --import-python
// (cmd_import_python.cpp), with --json: what was imported.
int import_edge_state(const Globals& g, const std::string& file, bool json = false);
int import_sync_state(const Globals& g, const std::string& file, const std::string& fleet_arg, bool json = false);
int import_python(const Globals& g, const std::string& db, const std::string& conf_dir, bool json = false);

}  // namespace wgf::cli
