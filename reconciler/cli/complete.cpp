// Shell completion and documentation checks ask the binary itself, so a new command, option,
// choice or YAML key reaches them without editing the completion scripts or the tests:
//   complete words -- WORD... CURRENT   candidates for CURRENT on the command line WORD...
//   complete nodes | fleets             names from the fleet file of -c
//   help-keys                           every YAML key the parser accepts (config::accepted_keys)
// Completion runs on every TAB against whatever file -c names, often half edited: it never fails
// loudly (no diagnostics, exit 0 with what it could read) and prints only names, never a key.
#include "cli/complete.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <utility>

#include "config/parse.hpp"
#include "config/read.hpp"

namespace wgf::cli {
namespace {

struct FleetNames {
    std::set<std::string> fleets, nodes;
};

// The names a partial parse yields; an unreadable or broken file yields what it can, maybe none.
FleetNames read_names(const std::string& config, const std::optional<std::string>& dropin_dir) {
    FleetNames out;
    try {
        config::Sources sources;
        config::Diagnostics diags;
        auto files = config::read_config_files(config, dropin_dir.value_or(config::default_dropin_dir(config)), sources, diags);
        if (files.empty()) return out;
        const config::Parsed parsed = config::parse(files, sources, diags);
        for (const auto& [name, fleet] : parsed.config.fleets) {
            out.fleets.insert(name);
            for (const auto& [node, member] : fleet.controllers) out.nodes.insert(node);
            for (const auto& [node, member] : fleet.peers) out.nodes.insert(node);
            if (fleet.style == model::FleetStyle::subnet) out.nodes.insert(fleet.server);
        }
    } catch (const std::exception&) {
        // Completion offers nothing rather than an error in the middle of the command line.
    }
    return out;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// What the shell should offer: words with a description each, or a directive for its own file
// completion (":files", ":dirs").
class Candidates {
public:
    explicit Candidates(std::string prefix) : prefix_(std::move(prefix)) {}
    void add(const std::string& word, const std::string& description = "") {
        if (word.rfind(prefix_, 0) == 0 && seen_.insert(word).second) lines_.push_back(word + "\t" + first_line(description));
    }
    void directive(const std::string& d) { lines_.push_back(d); }
    bool empty() const { return lines_.empty(); }
    void print() const {
        for (const auto& l : lines_) std::cout << l << "\n";
    }

private:
    std::string prefix_;
    std::set<std::string> seen_;
    std::vector<std::string> lines_;
};

// Where a command line stands after its complete words: the command reached, the positional
// arguments given to it, the option whose value comes next, and the fleet file it names.
struct Position {
    CLI::App* app = nullptr;
    std::vector<std::string> positionals;
    CLI::Option* pending = nullptr;  // the previous word is this option, still without its value
    std::string config = "/etc/wg-fleet.yaml";
    std::optional<std::string> dropin_dir;
};

// An option of the command or of a command above it (global options may follow the command).
CLI::Option* find_option(CLI::App* app, const std::string& name) {
    for (CLI::App* a = app; a; a = a->get_parent())
        if (CLI::Option* o = a->get_option_no_throw(name); o && !o->get_positional()) return o;
    return nullptr;
}

// The same fleet file, the command line begun again at the top.
Position restart(CLI::App& root, const Position& pos) {
    return Position{.app = &root, .positionals = {}, .pending = nullptr, .config = pos.config, .dropin_dir = pos.dropin_dir};
}

bool takes_value(const CLI::Option& o) { return o.get_type_size_max() > 0; }

std::string expand_home(const std::string& path) {
    const char* home = std::getenv("HOME");
    if (home && path.rfind("~/", 0) == 0) return home + path.substr(1);
    return path;
}

void note_value(Position& pos, const CLI::Option& o, const std::string& value) {
    if (o.check_lname("config")) pos.config = expand_home(value);
    if (o.check_lname("dropin-dir")) pos.dropin_dir = expand_home(value);
}

CLI::App* subcommand(CLI::App* app, const std::string& name) {
    for (CLI::App* sub : app->get_subcommands({}))
        if (!sub->get_group().empty() && sub->check_name(name)) return sub;
    return nullptr;
}

bool is_sandbox_action(const Position& pos, const std::string& action) {
    return pos.app->get_name() == action && pos.app->get_parent() && pos.app->get_parent()->get_name() == "sandbox";
}

// `sandbox exec [--name N] NODE wg-fleet ARGS...` runs this binary as NODE: ARGS is a command
// line of its own, completed from the top again.
bool nested_command_line(const Position& pos) {
    return is_sandbox_action(pos, "exec") && pos.positionals.size() >= 2 && pos.positionals[1] == "wg-fleet";
}

Position walk(CLI::App& root, const std::vector<std::string>& words) {
    Position pos{.app = &root, .positionals = {}, .pending = nullptr, .config = "/etc/wg-fleet.yaml", .dropin_dir = {}};
    for (const std::string& w : words) {
        if (pos.pending) {
            note_value(pos, *pos.pending, w);
            pos.pending = nullptr;
            continue;
        }
        if (nested_command_line(pos)) pos = restart(root, pos);
        if (w.size() > 1 && w[0] == '-') {
            const auto eq = w.find('=');
            CLI::Option* o = find_option(pos.app, w.substr(0, eq));
            if (!o) continue;
            if (eq != std::string::npos) note_value(pos, *o, w.substr(eq + 1));
            else if (takes_value(*o)) pos.pending = o;
            continue;
        }
        if (pos.positionals.empty())
            if (CLI::App* sub = subcommand(pos.app, w)) {
                pos.app = sub;
                continue;
            }
        pos.positionals.push_back(w);
    }
    if (nested_command_line(pos)) pos = restart(root, pos);
    return pos;
}

void add_names(Candidates& out, const std::set<std::string>& names, const std::string& what) {
    for (const auto& n : names) out.add(n, what);
}

void add_option_value(Candidates& out, const Position& pos, CLI::Option& o) {
    const std::string type = o.get_type_name();
    if (auto values = option_choices(o); !values.empty()) {
        for (const auto& v : values) out.add(v);
    } else if (type == "FILE") {
        out.directive(":files");
    } else if (type == "DIR") {
        out.directive(":dirs");
    } else if (type == "NAME" || o.check_lname("node")) {
        add_names(out, read_names(pos.config, pos.dropin_dir).nodes, "node");
    } else if (type == "FLEET" || o.check_lname("fleet")) {
        add_names(out, read_names(pos.config, pos.dropin_dir).fleets, "fleet");
    }
}

void add_options(Candidates& out, const CLI::App* app) {
    for (const CLI::App* a = app; a; a = a->get_parent())
        for (const CLI::Option* o : a->get_options()) {
            if (o->get_positional() || o == a->get_help_all_ptr()) continue;
            for (const auto& l : o->get_lnames()) out.add("--" + l, o->get_description());
            for (const auto& s : o->get_snames()) out.add("-" + s, o->get_description());
        }
}

// The next positional argument: a choice, a file, a node, or (after `sandbox exec NODE`) this
// binary.
void add_positional(Candidates& out, const Position& pos) {
    const std::vector<CLI::Option*> positionals = pos.app->get_options([](CLI::Option* x) { return x->get_positional(); });
    const size_t k = pos.positionals.size();
    if (k < positionals.size()) {
        for (const auto& v : option_choices(*positionals[k])) out.add(v);
        const std::string type = positionals[k]->get_type_name();
        if (type == "FILE") out.directive(":files");
        if (type == "NODE") add_names(out, read_names(pos.config, pos.dropin_dir).nodes, "node");
    }
    if (is_sandbox_action(pos, "exec") && k == 1) out.add("wg-fleet", "this binary, run as the node");
}

int complete_words(CLI::App& root, std::vector<std::string> words) {
    const std::string current = words.empty() ? "" : words.back();
    if (!words.empty()) words.pop_back();
    const Position pos = walk(root, words);
    if (pos.pending) {
        Candidates out(current);
        add_option_value(out, pos, *pos.pending);
        out.print();
        return kOk;
    }
    if (current.rfind("--", 0) == 0 && current.find('=') != std::string::npos) {
        // --option=VALUE: the shell completes the part after '='.
        const auto eq = current.find('=');
        Candidates out(current.substr(eq + 1));
        if (CLI::Option* o = find_option(pos.app, current.substr(0, eq)); o && takes_value(*o)) add_option_value(out, pos, *o);
        out.print();
        return kOk;
    }
    Candidates out(current);
    if (!current.empty() && current[0] == '-') {
        add_options(out, pos.app);
        out.print();
        return kOk;
    }
    if (pos.positionals.empty())
        for (const CLI::App* sub : pos.app->get_subcommands({}))
            if (!sub->get_group().empty()) out.add(sub->get_name(), sub->get_description());
    add_positional(out, pos);
    if (out.empty() && pos.app->get_subcommands({}).empty()) add_options(out, pos.app);
    out.print();
    return kOk;
}

// The words after "complete words [--]" as typed: the command line before CLI11 (and the sandbox,
// which takes `exec` tails off) saw it.
std::vector<std::string> typed_words(const std::vector<std::string>& args) {
    auto it = std::find(args.begin(), args.end(), "complete");
    if (it != args.end()) ++it;
    if (it != args.end() && *it == "words") ++it;
    if (it != args.end() && *it == "--") ++it;
    return {it, args.end()};
}

}  // namespace

std::vector<std::string> option_choices(CLI::Option& o) {
    std::vector<std::string> out;
    std::string d;
    try {
        d = o.get_validator()->get_description();
    } catch (const CLI::OptionNotFound&) {
        return out;
    }
    if (d.size() < 2 || d.front() != '{' || d.back() != '}') return out;
    std::string item;
    for (char c : d.substr(1, d.size() - 2)) {
        if (c == ',') out.push_back(std::exchange(item, {}));
        else item += c;
    }
    if (!item.empty()) out.push_back(item);
    return out;
}

void add_hidden_helpers(CLI::App& app, Context& ctx, const std::vector<std::string>& typed) {
    auto what = std::make_shared<std::string>();
    auto words = std::make_shared<std::vector<std::string>>();
    auto* complete = app.add_subcommand("complete", "Completion candidates (for the shell completion scripts)");
    complete->group("");  // hidden
    complete->add_option("what", *what, "words, nodes or fleets")->required()->check(CLI::IsMember({"words", "nodes", "fleets"}));
    complete->add_option("words", *words, "the command line, after --");
    complete->callback([&app, &ctx, what, words, typed] {
        ctx.rc = kOk;
        if (*what == "words") {
            complete_words(app, typed_words(typed));
            return;
        }
        const FleetNames names = read_names(expand_home(ctx.g.config), ctx.g.dropin_dir);
        for (const auto& n : *what == "nodes" ? names.nodes : names.fleets) std::cout << n << "\n";
    });

    auto* keys = app.add_subcommand("help-keys", "Every YAML key the parser accepts, as a path (for tests)");
    keys->group("");  // hidden
    keys->callback([] {
        for (const auto& k : config::accepted_keys()) std::cout << k << "\n";
    });
}

}  // namespace wgf::cli
