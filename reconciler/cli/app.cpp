#include "cli/app.hpp"

#include <algorithm>
#include <iostream>

#ifndef WGF_VERSION
#define WGF_VERSION "0.0.0"
#endif

namespace wgf::cli {
namespace {

// `help-commands`: every command as its path and the options it accepts, one per line
// ("plan\t--json --detailed-exitcode"), so tests that must cover every command (the secrets
// audit) enumerate them from here instead of parsing --help.
void list_commands(const CLI::App& app, const std::string& prefix) {
    for (const CLI::App* sub : app.get_subcommands({})) {
        const std::string path = prefix.empty() ? sub->get_name() : prefix + " " + sub->get_name();
        if (!sub->get_subcommands({}).empty()) {
            list_commands(*sub, path);
            continue;
        }
        std::string opts;
        for (const CLI::Option* o : sub->get_options()) {
            if (o == sub->get_help_ptr() || o == sub->get_help_all_ptr()) continue;
            std::string name = o->get_lnames().empty() ? (o->get_positional() ? "<" + o->get_name() + ">" : o->get_name())
                                                       : "--" + o->get_lnames().front();
            opts += (opts.empty() ? "" : " ") + name;
        }
        std::cout << path << "\t" << opts << "\n";
    }
}

void add_global_options(CLI::App& app, Globals& g) {
    app.add_option("-c,--config", g.config, "The fleet file")->default_str("/etc/wg-fleet.yaml")->type_name("FILE");
    app.add_option("--dropin-dir", g.dropin_dir, "Drop-in directory merged in name order (default: CONFIG without .yaml, plus .d)")
        ->type_name("DIR");
    app.add_option("--node", g.node, "This node's name (default: the hostname)")->type_name("NAME");
    app.add_option("--state-dir", g.state_dir, "Overrides state_dir: in the file")->type_name("DIR");
    app.add_option("--lock-timeout", g.lock_timeout,
                   "Seconds apply, keygen and each reconcile of watch wait while another run holds the state directory's lock")
        ->default_val(30)
        ->check(CLI::Range(0, 86400))
        ->type_name("SECONDS");
    app.add_flag("-v,--verbose", g.verbose, "More output");
    app.add_flag("-q,--quiet", g.quiet, "Less output: no warnings, no summary");
    app.add_flag("--no-cache", g.no_cache,
                 "Parse, validate and render the fleet file although the last verified apply kept its desired state for unchanged inputs");
}

}  // namespace

int run(const std::vector<std::string>& args, const Globals& preset, std::span<const AddCommand> commands) {
    Context ctx{.g = preset, .rc = kOk, .args = args, .run = {}};
    ctx.run = [commands](const std::vector<std::string>& a, const Globals& p) { return run(a, p, commands); };
    CLI::App app{
        "wg-fleet: a declarative reconciler for WireGuard fleets.\n"
        "One YAML file describes the fleet; every node applies its own part.",
        "wg-fleet"};
    app.set_version_flag("-V,--version", "wg-fleet " WGF_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global options may also follow the command
    add_global_options(app, ctx.g);
    for (AddCommand add : commands) add(app, ctx);

    auto* help_commands = app.add_subcommand("help-commands", "List every command and its options, one per line (for tests)");
    help_commands->group("");  // hidden
    help_commands->callback([&] { list_commands(app, ""); });

    std::vector<std::string> reversed(ctx.args.rbegin(), ctx.args.rend());  // as CLI11 takes them
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; a usage error is an error (1), keeping 2 for
        // `plan --detailed-exitcode` (changes pending).
        return app.exit(e) == 0 ? kOk : kError;
    } catch (const std::exception& e) {
        std::cerr << "wg-fleet: " << e.what() << "\n";
        return kError;
    }
    return ctx.rc;
}

}  // namespace wgf::cli
