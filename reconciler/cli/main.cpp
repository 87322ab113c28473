// wg-fleet's command line: global options, one subcommand per action.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"

#ifndef WGF_VERSION
#define WGF_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
    using namespace wgf::cli;
    Globals g;
    CLI::App app{"wg-fleet: a declarative reconciler for WireGuard fleets.\n"
                 "One YAML file describes the fleet; every node applies its own part.",
                 "wg-fleet"};
    app.set_version_flag("-V,--version", "wg-fleet " WGF_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global options may also follow the command
    app.add_option("-c,--config", g.config, "The fleet file")->default_str("/etc/wg-fleet.yaml");
    app.add_option("--dropin-dir", g.dropin_dir, "Drop-in directory merged in name order (default: CONFIG without .yaml, plus .d)");
    app.add_option("--node", g.node, "This node's name (default: the hostname)");
    app.add_option("--state-dir", g.state_dir, "Overrides state_dir: in the file");
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

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::cerr << "wg-fleet: " << e.what() << "\n";
        return kError;
    }
    return rc;
}
