#include "cli/app.hpp"
#include "cli/complete.hpp"

#include <algorithm>
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "config/diag.hpp"

#ifndef WGF_VERSION
#define WGF_VERSION "0.0.0"
#endif

namespace wgf::cli {
namespace {

// `help-commands`: every command as its path and the options it accepts, one per line
// ("plan\t--json --detailed-exitcode"), so tests that must cover every command (the secrets
// audit, the man page) enumerate them from here instead of parsing --help. An option is listed
// by all its names ("-c --config"); a positional argument as <NAME>, or <NAME:a,b> with its
// choices. Hidden commands (these helpers) are not listed. `--globals` lists the global options.
std::string option_words(CLI::Option* o) {
    if (o->get_positional()) {
        const std::vector<std::string> values = option_choices(*o);
        std::string set;
        for (const auto& v : values) set += (set.empty() ? ":" : ",") + v;
        return "<" + o->get_name() + set + ">";
    }
    std::string out;
    for (const auto& s : o->get_snames()) out += (out.empty() ? "-" : " -") + s;
    for (const auto& l : o->get_lnames()) out += (out.empty() ? "--" : " --") + l;
    return out;
}

std::string options_line(CLI::App& app) {
    std::string opts;
    for (CLI::Option* o : app.get_options()) {
        if (o == app.get_help_ptr() || o == app.get_help_all_ptr()) continue;
        opts += (opts.empty() ? "" : " ") + option_words(o);
    }
    return opts;
}

void list_commands(CLI::App& app, const std::string& prefix) {
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        if (sub->get_group().empty()) continue;
        const std::string path = prefix.empty() ? sub->get_name() : prefix + " " + sub->get_name();
        if (!sub->get_subcommands({}).empty()) {
            list_commands(*sub, path);
            continue;
        }
        std::cout << path << "\t" << options_line(*sub) << "\n";
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
                 "Parse, validate and render the fleet file, and read the firewall table, although the last verified apply kept its "
                 "desired state for unchanged inputs and a record of the table");
}

std::optional<std::string> nearest(std::string_view word, const std::vector<std::string>& candidates) {
    return config::nearest_word(word, std::vector<std::string_view>(candidates.begin(), candidates.end()));
}

std::vector<std::string> visible_commands(CLI::App& app) {
    std::vector<std::string> out;
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
        if (!sub->get_group().empty()) out.push_back(sub->get_name());
    return out;
}

// An option of `cmd` or of a command above it (global options may follow the command).
CLI::Option* find_option(const std::vector<CLI::App*>& chain, const std::string& name) {
    // The innermost command first: its option shadows a global one of the same name.
    for (size_t i = chain.size(); i-- > 0;)
        if (CLI::Option* o = chain[i]->get_option_no_throw(name)) return o;
    return nullptr;
}

// "did you mean ...?" (or what the word is not) for a usage error: the words are walked as
// CLI11 walks them, down the commands they name; the first one nothing accepts is a mistyped
// command or option. Else a positional argument outside its choices ("action: upp not in
// {up,test,exec,down}"). Hidden commands are never suggested.
std::optional<std::string> suggestion(CLI::App& app, const CLI::ParseError& e, const std::vector<std::string>& args) {
    std::vector<CLI::App*> chain{&app};
    bool value_next = false;
    for (const auto& a : args) {
        if (value_next) {
            value_next = false;
            continue;
        }
        if (a == "--") break;
        if (a.size() > 1 && a[0] == '-') {
            const std::string name = a.substr(0, a.find('='));
            const bool is_long = name.rfind("--", 0) == 0;
            if (!is_long && name.size() > 2) continue;  // bundled short flags: left to CLI11
            if (CLI::Option* o = find_option(chain, name)) {
                value_next = a.find('=') == std::string::npos && o->get_items_expected_min() > 0;
                continue;
            }
            if (!is_long) return std::nullopt;
            std::vector<std::string> options;
            for (CLI::App* c : chain)
                for (CLI::Option* o : c->get_options())
                    for (const auto& l : o->get_lnames()) options.push_back("--" + l);
            if (auto n = nearest(name, options)) return fmt::format("did you mean {}?", *n);
            return std::nullopt;
        }
        const std::vector<std::string> commands = visible_commands(*chain.back());
        if (commands.empty()) continue;  // a positional argument
        if (std::find(commands.begin(), commands.end(), a) != commands.end()) {
            chain.push_back(chain.back()->get_subcommand(a));
            continue;
        }
        std::string path;
        for (size_t i = 1; i < chain.size(); ++i) path += chain[i]->get_name() + " ";
        if (auto n = nearest(a, commands)) return fmt::format("'{}' is not a command; did you mean '{}{}'?", a, path, *n);
        return fmt::format("'{}' is not a command; see wg-fleet {}--help", a, path);
    }
    const std::string what = e.what();
    const size_t in = what.find(" not in {"), close = what.rfind('}');
    if (in == std::string::npos || close == std::string::npos || close < in) return std::nullopt;
    const size_t colon = what.rfind(": ", in);
    const size_t start = colon == std::string::npos ? 0 : colon + 2;
    const std::string word = what.substr(start, in - start);
    std::vector<std::string> choices;
    const std::string list = what.substr(in + 9, close - in - 9);
    for (size_t i = 0; i <= list.size();) {
        size_t j = list.find(',', i);
        if (j == std::string::npos) j = list.size();
        choices.push_back(list.substr(i, j - i));
        i = j + 1;
    }
    if (auto n = nearest(word, choices)) return fmt::format("did you mean '{}'?", *n);
    return std::nullopt;
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

    auto globals = std::make_shared<bool>(false);
    auto* help_commands = app.add_subcommand("help-commands", "List every command and its options, one per line (for tests)");
    help_commands->group("");  // hidden
    help_commands->add_flag("--globals", *globals, "List the global options instead, on one line");
    help_commands->callback([&app, globals] {
        if (*globals) std::cout << options_line(app) << " -h --help\n";
        else list_commands(app, "");
    });
    add_hidden_helpers(app, ctx, args);

    std::vector<std::string> reversed(ctx.args.rbegin(), ctx.args.rend());  // as CLI11 takes them
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; a usage error is an error (1), keeping 2 for
        // `plan --detailed-exitcode` (changes pending).
        if (app.exit(e) == 0) return kOk;
        if (auto hint = suggestion(app, e, ctx.args)) std::cerr << "wg-fleet: " << *hint << "\n";
        return kError;
    } catch (const std::exception& e) {
        std::cerr << "wg-fleet: " << e.what() << "\n";
        return kError;
    }
    return ctx.rc;
}

}  // namespace wgf::cli
