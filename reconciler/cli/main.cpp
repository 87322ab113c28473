// wg-fleet's command line: global options, one subcommand per action.
#include <algorithm>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"

#ifndef WGF_VERSION
#define WGF_VERSION "0.0.0"
#endif

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

}  // namespace

int main(int argc, char** argv) {
    using namespace wgf::cli;
    Globals g;
    CLI::App app{"wg-fleet: a declarative reconciler for WireGuard fleets.\n"
                 "One YAML file describes the fleet; every node applies its own part.",
                 "wg-fleet"};
    app.set_version_flag("-V,--version", "wg-fleet " WGF_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global options may also follow the command
    app.add_option("-c,--config", g.config, "The fleet file")->default_str("/etc/wg-fleet.yaml")->type_name("FILE");
    app.add_option("--dropin-dir", g.dropin_dir, "Drop-in directory merged in name order (default: CONFIG without .yaml, plus .d)")->type_name("DIR");
    app.add_option("--node", g.node, "This node's name (default: the hostname)")->type_name("NAME");
    app.add_option("--state-dir", g.state_dir, "Overrides state_dir: in the file")->type_name("DIR");
    app.add_option("--keys-override", g.keys_override, "Take public keys only from DIR/<fleet>/<node>.pub, ignoring the YAML's (sandboxes)")
        ->group("");  // internal: used by `sandbox`
    app.add_option("--files-root", g.files_root, "Prefix for every file written (sandboxes)")->group("");
    app.add_option("--lock-timeout", g.lock_timeout,
                   "Seconds apply, keygen and each reconcile of watch wait while another run holds the state directory's lock")
        ->default_val(30)
        ->check(CLI::Range(0, 86400))
        ->type_name("SECONDS");
    app.add_flag("-v,--verbose", g.verbose, "More output");
    app.add_flag("-q,--quiet", g.quiet, "Less output: no warnings, no summary");

    int rc = kOk;
    auto* check = app.add_subcommand("check", "Validate the whole fleet file; exit 0 valid, 1 invalid");
    check->callback([&] { rc = cmd_check(g); });

    bool json = false;
    auto* addresses = app.add_subcommand("addresses", "Print the address plan of every fleet");
    addresses->add_flag("--json", json, "As JSON: {\"fleets\": {FLEET: {\"prefix\", \"nodes\": {NODE: {\"role\", \"addresses\"}}}}}");
    addresses->callback([&] { rc = cmd_addresses(g, json); });

    auto* render = app.add_subcommand("render", "Print a node's configuration in another format (offline)");
    render->require_subcommand(1);
    bool all = false;
    auto* hosts = render->add_subcommand("hosts", "Hosts-file entries of every member of the node's fleets");
    hosts->add_flag("--all", all, "Every fleet, not only the node's");
    hosts->callback([&] { rc = cmd_render_hosts(g, all); });
    std::string fleet;
    auto* wgq = render->add_subcommand("wg-quick", "The node's wg-quick config for one fleet");
    wgq->add_option("--fleet", fleet, "The fleet (needed when the node is in several)");
    wgq->callback([&] { rc = cmd_render_wg_quick(g, fleet); });

    bool plan_json = false, detailed = false;
    std::vector<std::string> adopt;
    const char* adopt_help = "Take over this existing WireGuard device although wg-fleet did not create it (e.g. from wg-quick); repeatable";
    auto* plan = app.add_subcommand("plan", "Show what apply would change on this node; exit 0, or 2 with --detailed-exitcode when changes are pending");
    plan->add_flag("--json", plan_json, "As JSON");
    plan->add_flag("--detailed-exitcode", detailed, "Exit 0 when nothing is to do, 2 when changes are pending, 1 on error");
    plan->add_option("--adopt", adopt, adopt_help)->type_name("IFNAME");
    plan->callback([&] { rc = cmd_plan(g, plan_json, detailed, adopt); });

    bool once = false;
    auto* apply = app.add_subcommand("apply", "Converge this node to the fleet (exit 0 converged, 1 error; nothing applied if the config is invalid)");
    apply->add_flag("--once", once, "One run (the default; for symmetry with watch)");
    apply->add_option("--adopt", adopt, adopt_help)->type_name("IFNAME");
    apply->callback([&] { rc = cmd_apply(g, adopt); });

    bool status_json = false;
    auto* status = app.add_subcommand("status", "Peers with endpoint, latest handshake and transfer; pending members; drift");
    status->add_flag("--json", status_json, "As JSON");
    status->callback([&] { rc = cmd_status(g, status_json); });

    auto* keygen = app.add_subcommand("keygen", "Generate this node's private keys (0600 in state_dir) if missing, publish and print the public keys");
    keygen->callback([&] { rc = cmd_keygen(g); });

    int interval = 30;
    auto* watch = app.add_subcommand("watch", "Run as a service: converge on start, on every edit of the file or a drop-in, on SIGHUP and on every tick");
    watch->add_option("--interval", interval, "Seconds between drift-correction ticks")->default_val(30)->check(CLI::Range(1, 86400));
    watch->callback([&] { rc = cmd_watch(g, interval); });

    std::string sb_action, sb_name = "demo";
    std::vector<std::string>* sb_exec_command = nullptr;
    std::vector<std::string> sb_args;
    auto* sandbox = app.add_subcommand("sandbox",
                                       "The whole fleet in network namespaces on this machine:\n"
                                       "  up [FILE]         create (or update) the sandbox and apply every node\n"
                                       "  test              all-pairs reachability by address and host name\n"
                                       "  exec NODE [CMD]   run CMD in a node (`wg-fleet ...` runs as that node)\n"
                                       "  down              remove everything the sandbox created");
    sandbox->add_option("action", sb_action, "up, test, exec or down")->required()->check(CLI::IsMember({"up", "test", "exec", "down"}));
    sandbox->add_option("args", sb_args, "up: the fleet file (default: -c); exec: NODE and the command");
    sandbox->add_option("--name", sb_name, "Sandbox name (several can run side by side)")->default_val("demo");
    sandbox->callback([&] {
        if (sb_action == "exec") sb_args.insert(sb_args.end(), sb_exec_command->begin(), sb_exec_command->end());
        rc = cmd_sandbox(g, sb_action, sb_args, sb_name);
    });

    auto* help_commands = app.add_subcommand("help-commands", "List every command and its options, one per line (for tests)");
    help_commands->group("");  // hidden
    help_commands->callback([&] { list_commands(app, ""); });

    // `sandbox exec [--name N] NODE COMMAND...`: everything after NODE is the command, options
    // included, so it is split off before the command line is parsed.
    std::vector<std::string> args(argv, argv + argc);
    std::vector<std::string> exec_command;
    for (size_t i = 1; i + 1 < args.size(); ++i) {
        if (args[i] != "sandbox") continue;
        for (size_t j = i + 1; j < args.size(); ++j) {
            if (args[j] != "exec") continue;
            size_t k = j + 1;
            while (k < args.size() && (args[k] == "--name" || args[k].rfind("--name=", 0) == 0)) k += args[k] == "--name" ? 2 : 1;
            if (k < args.size()) {
                exec_command.assign(args.begin() + static_cast<long>(k) + 1, args.end());
                args.resize(k + 1);
            }
            break;
        }
        break;
    }
    sb_exec_command = &exec_command;
    std::reverse(args.begin(), args.end());
    args.pop_back();  // CLI11 takes the arguments without the program name, in reverse order

    try {
        app.parse(args);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; a usage error is an error (1), keeping 2 for
        // `plan --detailed-exitcode` (changes pending).
        return app.exit(e) == 0 ? kOk : kError;
    } catch (const std::exception& e) {
        std::cerr << "wg-fleet: " << e.what() << "\n";
        return kError;
    }
    return rc;
}
