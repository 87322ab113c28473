// `wg-fleet sandbox` on the command line: the actions as subcommands, each with its own --help
// (the actions themselves are in sandbox.cpp). Kept apart so that only this file of the sandbox
// compiles CLI11.
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sandbox/actions.hpp"
#include "sandbox/sandbox.hpp"

namespace wgf::sandbox {
namespace {

using cli::Globals;
using cli::kError;

// --format text|json and --json, as the other commands that print results have them (text and
// JSON only: there is no CI annotation of a sandbox).
void add_format_option(CLI::App* a, bool& json, const std::string& what) {
    auto check = [](const std::string& v) -> std::string {
        return v == "text" || v == "json" ? "" : fmt::format("unknown format '{}': use one of text, json", v);
    };
    auto* format = a->add_option_function<std::string>(
                        "--format", [&json](const std::string& v) { json = v == "json"; }, "Output format: text, json (default text)")
                       ->check(CLI::Validator(check, "{text,json}", "format"))
                       ->type_name("FORMAT");
    auto* flag = a->add_flag_callback(
        "--json", [&json] { json = true; }, "The same as --format json: " + what);
    format->excludes(flag);
    flag->excludes(format);
}

// `sandbox exec [--name N] NODE COMMAND...`: everything after NODE is the command, options
// included, so it is taken off before the command line is parsed.
std::vector<std::string> take_exec_command(std::vector<std::string>& args) {
    for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] != "sandbox") continue;
        for (size_t j = i + 1; j < args.size(); ++j) {
            if (args[j] != "exec") continue;
            size_t k = j + 1;
            while (k < args.size() && (args[k] == "--name" || args[k].rfind("--name=", 0) == 0)) k += args[k] == "--name" ? 2 : 1;
            if (k >= args.size()) return {};
            std::vector<std::string> command(args.begin() + static_cast<long>(k) + 1, args.end());
            args.resize(k + 1);
            return command;
        }
        return {};
    }
    return {};
}

}  // namespace

void add_command(CLI::App& app, cli::Context& ctx) {
    struct Options {
        std::string name = "sandbox", file, node;
        bool prune = false, detailed = false, json = false;
        std::vector<std::string> exec_command, command_help;
    };
    auto o = std::make_shared<Options>();
    o->exec_command = take_exec_command(ctx.args);
    auto* sub = app.add_subcommand(
        "sandbox", "The whole fleet in network namespaces on this machine; `wg-fleet sandbox ACTION --help` for each action");
    sub->require_subcommand(1);
    // --name before the action or after it: each action has it too, so its --help shows it.
    auto add_name = [o](CLI::App* a) {
        a->add_option("--name", o->name, "Sandbox name (several can run side by side; run.sh demo uses its own, demo)")
            ->default_val("sandbox")
            ->type_name("SANDBOX");
    };
    add_name(sub);
    auto action = [&ctx](CLI::App* a, std::function<int()> f) {
        a->callback([&ctx, f = std::move(f)] { ctx.rc = need_root() ? f() : kError; });
    };

    auto* up = sub->add_subcommand("up", "Create the sandbox, or bring it up to date with FILE, and apply every node");
    up->footer(
        "FILE becomes the sandbox's file (what `exec NODE wg-fleet ...`, `plan` and `test` use). Nodes new in FILE join; a node\n"
        "whose IPv4 endpoint changed moves to its new underlay address; every node applies. Nodes no longer in FILE are named,\n"
        "and removed with --prune. A node's managed files (hosts_file, http_routes_dir) are written under\n"
        "/run/wg-fleet-sandbox/NAME/nodes/NODE/files/, never at the host's paths; in the node, /etc/hosts holds its hosts_file.");
    up->add_option("file", o->file, "The fleet file (default: -c, or /etc/wg-fleet.yaml)")->type_name("FILE");
    up->add_flag("--prune", o->prune, "Remove the nodes no longer in FILE: their namespaces, processes, directories and published keys");
    add_name(up);
    action(up, [&ctx, o] {
        Globals g = ctx.g;
        if (!o->file.empty()) g.config = o->file;
        return sandbox_up(ctx, g, o->name, UpOptions{.verbose = ctx.g.verbose > 0, .prune = o->prune});
    });

    auto* pl = sub->add_subcommand("plan", "Preview FILE on every node, applying nothing");
    pl->footer(
        "Each node's `wg-fleet plan` of FILE under a heading `== NODE (plan of FILE)`, as `exec NODE wg-fleet -c FILE plan`\n"
        "prints it; nodes FILE adds or drops are named. The sandbox keeps its own file; `up FILE` applies FILE.");
    pl->add_option("file", o->file, "The edited fleet file (default: the sandbox's own)")->type_name("FILE");
    pl->add_flag("--detailed-exitcode", o->detailed, "Exit 0 when no node would change, 2 when one would, 1 on error");
    add_name(pl);
    add_format_option(pl, o->json, "one document with each node's `plan --json`, its status and underlay address, new and stale nodes");
    action(pl, [&ctx, o] { return sandbox_plan(ctx, o->name, o->file, o->detailed, o->json); });

    auto* test = sub->add_subcommand("test", "All-pairs reachability by address and host name; exit 1 if any check fails");
    test->footer(
        "Fleet by fleet, a matrix: every member pings every other at its IPv6 address, IPv4 address (fleets with ipv4) and\n"
        "host name (ok/FAIL each); then the first address of every announced route, from every other member.");
    add_name(test);
    add_format_option(test, o->json, "one document with every check (from, to, by, target, ok) and the counts");
    action(test, [&ctx, o] { return sandbox_test(ctx.g, o->name, o->json); });

    auto* ex = sub->add_subcommand("exec", "Run COMMAND in a node (`wg-fleet ...` runs as that node)");
    ex->footer(
        "Everything after NODE is the command (default: sh), options included. `wg-fleet ...` runs this binary as NODE, with\n"
        "the sandbox's file (or -c FILE to try another), the node's state directory and the sandbox's keys.");
    add_name(ex);
    ex->add_option("node", o->node, "The node")->required()->type_name("NODE");
    ex->add_option("command", o->command_help, "The command and its arguments")->type_name("COMMAND");
    action(ex, [&ctx, o] { return sandbox_exec(ctx, o->name, o->node, o->exec_command); });

    auto* down = sub->add_subcommand("down", "Remove everything the sandbox created: namespaces, processes, files");
    add_name(down);
    action(down, [o] { return sandbox_down(o->name, false); });
}

}  // namespace wgf::sandbox
