// The command line of every command but the sandbox: each command's subcommand, options and
// action, wired to its cmd_* function (commands.hpp). Kept apart from the commands themselves so
// that only this file and app.cpp compile CLI11's header-only library, whose inline code is
// most of what the compiler and clang-tidy would otherwise read again in every command's file.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/app.hpp"
#include "cli/commands.hpp"
#include "cli/plan_text.hpp"

namespace wgf::output {

void add_format_option(CLI::App& sub, Format& format, bool prometheus_ok) {
    std::string names = "text, json, github, gitlab";
    if (prometheus_ok) names += ", prometheus";
    std::string choices = names;
    std::erase(choices, ' ');
    auto check = [prometheus_ok, names](const std::string& value) -> std::string {
        auto f = parse_format(value);
        if (!f) return fmt::format("unknown format '{}': use one of {}", value, names);
        if (*f == Format::prometheus && !prometheus_ok) return fmt::format("format 'prometheus' is only for status: use one of {}", names);
        return {};
    };
    auto* opt = sub.add_option_function<std::string>(
                       "--format", [&format](const std::string& value) { format = *parse_format(value); },
                       fmt::format("Output format: {} (default text)", names))
                    // Described as CLI::IsMember describes its set: --help shows the choices
                    // and shell completion offers them.
                    ->check(CLI::Validator(check, "{" + choices + "}", "format"))
                    ->type_name("FORMAT");
    auto* json = sub.add_flag_callback(
        "--json", [&format] { format = Format::json; }, "The same as --format json");
    opt->excludes(json);
    json->excludes(opt);
}


void add_color_option(CLI::App& sub, Color& when) {
    sub.add_option_function<std::string>(
           "--color", [&when](const std::string& v) { when = v == "always"  ? Color::always
                                                             : v == "never" ? Color::never
                                                                            : Color::auto_; },
           "Colour the plan: auto (on a terminal, unless NO_COLOR is set), always or never (default auto)")
        // IsMember: --help shows the choices and shell completion offers them.
        ->check(CLI::IsMember({"auto", "never", "always"}))
        ->type_name("WHEN");
}

}  // namespace wgf::output

namespace wgf::cli {

namespace {
const char* const kJsonHelp = "Print the files as JSON: {\"version\": 1, \"node\", \"files\": [{\"name\", \"path\", \"content\"}]}";
const char* const kAdoptHelp =
    "Take over this existing WireGuard device although wg-fleet did not create it (e.g. from wg-quick); repeatable";
}  // namespace

void add_addresses(CLI::App& app, Context& ctx) {
    auto format = std::make_shared<output::Format>(output::Format::text);
    auto* sub = app.add_subcommand(
        "addresses",
        "Print the address plan of every fleet (JSON: {\"version\": 1, \"fleets\": {FLEET: {\"prefix\", \"nodes\": {NODE: {\"role\", "
        "\"addresses\"}}}}})");
    output::add_format_option(*sub, *format);
    sub->callback([&ctx, format] { ctx.rc = cmd_addresses(ctx.g, *format); });
}

void add_check(CLI::App& app, Context& ctx) {
    auto format = std::make_shared<output::Format>(output::Format::text);
    auto* sub = app.add_subcommand("check", "Validate the whole fleet file; exit 0 valid, 1 invalid");
    output::add_format_option(*sub, *format);
    sub->callback([&ctx, format] { ctx.rc = cmd_check(ctx.g, *format); });
}

void add_render(CLI::App& app, Context& ctx) {
    struct Options {
        bool all = false;
        std::string fleet;
        bool json = false;
    };
    auto o = std::make_shared<Options>();
    auto* render = app.add_subcommand("render", "Print a node's configuration in another format (offline)");
    render->require_subcommand(1);
    auto* hosts = render->add_subcommand("hosts", "Hosts-file entries of every member of the node's fleets");
    hosts->add_flag("--all", o->all, "Every fleet, not only the node's");
    hosts->add_flag("--json", o->json, "Print the entries as JSON: {\"version\": 1, \"node\", \"entries\": [{\"address\", \"name\"}]}");
    hosts->callback([&ctx, o] { ctx.rc = cmd_render_hosts(ctx.g, o->all, o->json); });
    auto* wgq = render->add_subcommand("wg-quick", "The node's wg-quick config for one fleet");
    wgq->add_option("--fleet", o->fleet, "The fleet (needed when the node is in several)");
    wgq->add_flag("--json", o->json, kJsonHelp);
    wgq->callback([&ctx, o] { ctx.rc = cmd_render_wg_quick(ctx.g, o->fleet, o->json); });
    auto nixos_dir = std::make_shared<std::string>();
    auto* nixos = render->add_subcommand("nixos", "The node's NixOS module (networking.wireguard, firewall, sysctls, hosts, NAT)");
    nixos
        ->add_option("--all", *nixos_dir, "Write DIR/NODE.nix for every node of every fleet and DIR/default.nix mapping host names to them")
        ->type_name("DIR");
    nixos->add_flag("--json", o->json, kJsonHelp);
    nixos->callback([&ctx, nixos_dir, o] { ctx.rc = cmd_render_nixos(ctx.g, *nixos_dir, o->json); });
    auto* nwd = render->add_subcommand("networkd", "The node's systemd-networkd .netdev and .network files, one pair per interface");
    auto nwd_dir = std::make_shared<std::string>();
    nwd->add_option("--dir", *nwd_dir, "Write the files into DIR (mode 0644) instead of printing them")->type_name("DIR");
    nwd->add_flag("--json", o->json, kJsonHelp);
    nwd->callback([&ctx, nwd_dir, o] { ctx.rc = cmd_render_networkd(ctx.g, *nwd_dir, o->json); });
}

void add_watch(CLI::App& app, Context& ctx) {
    auto interval = std::make_shared<int>(30);
    auto* sub = app.add_subcommand(
        "watch", "Run as a service: converge on start, on every edit of the file or a drop-in, on SIGHUP and on every tick");
    sub->add_option("--interval", *interval, "Seconds between drift-correction ticks")->default_val(30)->check(CLI::Range(1, 86400));
    auto try_s = std::make_shared<int>(0);
    sub->add_option("--try", *try_s,
                    "Apply every edit of the file as a try of SECONDS: confirmed when the peers that were ok come back, else rolled "
                    "back. Watch goes on meanwhile: an edit during a try is applied once it settles, SIGTERM leaves it pending. "
                    "After a rollback, drift from the restored state is repaired until the file is edited")
        ->check(CLI::Range(1, 86400))
        ->type_name("SECONDS");
    sub->callback([&ctx, interval, try_s] { ctx.rc = cmd_watch(ctx.g, *interval, *try_s); });
}

void add_plan(CLI::App& app, Context& ctx) {
    struct Options {
        output::Format format = output::Format::text;
        bool detailed = false;
        std::vector<std::string> adopt;
        output::Color color = output::Color::auto_;
    };
    auto o = std::make_shared<Options>();
    auto* sub = app.add_subcommand(
        "plan", "Show what apply would change on this node; exit 0, or 2 with --detailed-exitcode when changes are pending");
    output::add_format_option(*sub, o->format);
    sub->add_flag("--detailed-exitcode", o->detailed, "Exit 0 when nothing is to do, 2 when changes are pending, 1 on error");
    sub->add_option("--adopt", o->adopt, kAdoptHelp)->type_name("IFNAME");
    output::add_color_option(*sub, o->color);
    sub->callback([&ctx, o] { ctx.rc = cmd_plan(ctx.g, o->format, o->detailed, o->adopt, o->color); });
}

void add_apply(CLI::App& app, Context& ctx) {
    struct Options {
        bool once = false;
        output::Format format = output::Format::text;
        std::vector<std::string> adopt;
        output::Color color = output::Color::auto_;
        TryOptions tried;
    };
    auto o = std::make_shared<Options>();
    auto* sub = app.add_subcommand("apply",
                                   "Converge this node to the fleet (exit 0 converged, 1 error; nothing applied if the config is invalid; "
                                   "with --try: 0 confirmed, 1 rolled back or error)");
    sub->add_flag("--once", o->once, "One run (the default; for symmetry with watch)");
    output::add_format_option(*sub, o->format);
    sub->add_option("--adopt", o->adopt, kAdoptHelp)->type_name("IFNAME");
    output::add_color_option(*sub, o->color);
    auto try_s = std::make_shared<std::string>();
    auto* try_opt = sub->add_option("--try", *try_s,
                                    "Apply as a try: keep the change only once it is confirmed within SECONDS (default 120), else roll "
                                    "it back to the exact state before. Confirmed when every peer that was ok before shows a fresh "
                                    "handshake or traffic (and --probe succeeds), or by `wg-fleet confirm`")
                        ->expected(0, 1)
                        ->type_name("SECONDS");
    auto* probe = sub->add_option("--probe", o->tried.probe,
                                  "With --try: also require CMD (run with /bin/sh -c, killed after 30 s) to exit 0 before confirming")
                      ->type_name("CMD");
    auto* manual = sub->add_flag("--manual", o->tried.manual, "With --try: confirm only by `wg-fleet confirm` (no health verdict)");
    probe->needs(try_opt);
    manual->needs(try_opt);
    sub->add_flag("--force-rolled-back", o->tried.force_rolled_back,
                  "Apply the desired state although a try of it was rolled back (the file unchanged since)");
    sub->callback([&ctx, o, try_s, try_opt] {
        if (try_opt->count() > 0) {
            int seconds = 120;
            if (!try_s->empty()) {
                try {
                    size_t used = 0;
                    seconds = std::stoi(*try_s, &used);
                    if (used != try_s->size()) throw std::invalid_argument(*try_s);
                } catch (const std::exception&) {
                    throw CLI::ValidationError("--try", "SECONDS must be a whole number: " + *try_s);
                }
                if (seconds < 1 || seconds > 86400) throw CLI::ValidationError("--try", "SECONDS must be between 1 and 86400");
            }
            o->tried.seconds = seconds;
        }
        ctx.rc = cmd_apply(ctx.g, o->adopt, o->format, o->color, o->tried);
    });
}

void add_status(CLI::App& app, Context& ctx) {
    struct Options {
        output::Format format = output::Format::text;
        std::string output_file;
        bool check = false;
    };
    auto o = std::make_shared<Options>();
    auto* sub = app.add_subcommand("status", "Peers with health, endpoint, latest handshake and transfer; pending members; drift");
    output::add_format_option(*sub, o->format, true);
    sub->add_option("--output", o->output_file,
                    "With --format json or prometheus: write to FILE (replaced atomically, mode 0644) instead of stdout, e.g. for "
                    "node_exporter's textfile collector")
        ->type_name("FILE");
    sub->add_flag("--check", o->check,
                  "Exit 2 unless every peer is healthy (ok or idle) and the node has no drift and no conflict, for monitoring");
    sub->callback([&ctx, o] {
        if (!o->output_file.empty() && o->format != output::Format::json && o->format != output::Format::prometheus)
            throw CLI::ValidationError("--output", "only with --format json or prometheus");
        ctx.rc = cmd_status(ctx.g, o->format, o->output_file, o->check);
    });
}

void add_keygen(CLI::App& app, Context& ctx) {
    auto format = std::make_shared<output::Format>(output::Format::text);
    auto* sub = app.add_subcommand("keygen",
                                   "Generate this node's private keys (0600 in state_dir) if missing, publish and print the public keys");
    output::add_format_option(*sub, *format);
    sub->callback([&ctx, format] { ctx.rc = cmd_keygen(ctx.g, *format); });
}

void add_rotate(CLI::App& app, Context& ctx) {
    struct Options {
        std::string fleet;
        std::string at;
    };
    auto o = std::make_shared<Options>();
    auto* sub = app.add_subcommand("rotate",
                                   "Generate this node's next private key and publish it in keys_dir with a switch time: at that time "
                                   "this node and every node that reconciles swap the key together");
    sub->add_option("--fleet", o->fleet, "Rotate the key of this fleet only (default: every fleet the node is in)")->type_name("FLEET");
    sub->add_option("--at", o->at,
                    fmt::format("When the switch happens: RFC 3339 (2026-12-01T02:30:00Z) or +DURATION from now (+90s, +10m); "
                                "default +{}s, two ticks of watch's default --interval",
                                kRotateDelay))
        ->type_name("TIME");
    sub->callback([&ctx, o] { ctx.rc = cmd_rotate(ctx.g, o->fleet, o->at); });
}

void add_serve(CLI::App& app, Context& ctx) {
    auto interval = std::make_shared<int>(30);
    auto listen = std::make_shared<std::vector<std::string>>();
    auto* sub = app.add_subcommand("serve",
                                   "Run as a service like watch, plus the enrollment API: clients register and ping over HTTP, "
                                   "and are peers of their fleet within a second");
    sub->add_option("--interval", *interval, "Seconds between drift-correction ticks (and prunes)")
        ->default_val(30)
        ->check(CLI::Range(1, 86400));
    sub->add_option("--listen", *listen,
                    "ADDRESS:PORT to serve HTTP on (repeatable); default: serve: listen: in the file, else 127.0.0.1:8000 and each "
                    "served fleet's ip6 on port 8000");
    auto edge_state = std::make_shared<std::string>();
    auto sync_state = std::make_shared<std::string>();
    auto fleet = std::make_shared<std::string>();
    sub->add_option("--import-edge-state", *edge_state,
                    "Import the edge agent's state.json into the agent's drop-in (validated), then exit");
    sub->add_option("--import-sync-state", *sync_state,
                    "Import the Headscale sync service's sync-service-state.json into the fleet's mapping, then exit");
    sub->add_option("--fleet", *fleet, "The fleet --import-sync-state imports into (default: the only fleet with headscale:)");
    auto python_db = std::make_shared<std::string>();
    auto wg_conf_dir = std::make_shared<std::string>("/etc/wireguard");
    sub->add_option("--import-python", *python_db,
                    "Import the Python wg-fleet's clients.db (clients, addresses, host names) and its servers' keys from "
                    "--wg-conf-dir, then exit")
        ->type_name("FILE");
    sub->add_option("--wg-conf-dir", *wg_conf_dir, "Where --import-python reads wg_<fleet>.conf")
        ->default_val("/etc/wireguard")
        ->type_name("DIR");
    auto json = std::make_shared<bool>(false);
    sub->add_flag("--json", *json, "With --import-python, --import-edge-state or --import-sync-state: print what was imported as JSON");
    sub->callback([&ctx, interval, listen, edge_state, sync_state, fleet, python_db, wg_conf_dir, json] {
        if (!python_db->empty()) ctx.rc = import_python(ctx.g, *python_db, *wg_conf_dir, *json);
        else if (!edge_state->empty()) ctx.rc = import_edge_state(ctx.g, *edge_state, *json);
        else if (!sync_state->empty()) ctx.rc = import_sync_state(ctx.g, *sync_state, *fleet, *json);
        else if (*json) throw CLI::ValidationError("--json", "only with --import-python, --import-edge-state or --import-sync-state");
        else ctx.rc = cmd_serve(ctx.g, *interval, *listen);
    });
}

void add_confirm(CLI::App& app, Context& ctx) {
    auto* sub = app.add_subcommand("confirm",
                                   "Confirm the pending try (apply --try, watch --try): the change stays; exit 0 confirmed, 1 none "
                                   "pending or too late");
    sub->callback([&ctx] { ctx.rc = cmd_confirm(ctx.g); });
}

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
