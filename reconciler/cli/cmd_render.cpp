#include <algorithm>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "linux/files.hpp"
#include "plan/render_networkd.hpp"
#include "plan/render_nixos.hpp"
#include "system/keys.hpp"

namespace wgf::cli {
namespace {

// --json of every render: version 1 of its shape (README "JSON output"). On an error, check's
// diagnostics with the error, as every command prints them in JSON.
int fail(const Loaded& l, bool json, const std::string& message = {}) {
    if (!message.empty()) std::cerr << "wg-fleet: " << message << "\n";
    if (json)
        std::cout << output::diagnostics_json(l.diags, l.sources, message.empty() ? std::vector<std::string>{} : std::vector{message});
    return kError;
}

// What render wg-quick, nixos and networkd print: {"version", "node", "files": [{"name", "path",
// "content"}]}; "path" is where the file was written, null when it was printed.
struct RenderedFile {
    std::string name, content;
    std::optional<std::string> path{};
};

void print_files(const std::optional<std::string>& node, const std::vector<RenderedFile>& files) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& f : files)
        list.push_back({{"name", f.name},
                        {"path", f.path ? nlohmann::ordered_json(*f.path) : nlohmann::ordered_json(nullptr)},
                        {"content", f.content}});
    nlohmann::ordered_json out{{"version", 1}, {"node", node ? nlohmann::ordered_json(*node) : nlohmann::ordered_json(nullptr)}};
    out["files"] = std::move(list);
    std::cout << out.dump(2) << "\n";
}

}  // namespace

int cmd_render_hosts(const Globals& g, bool all, bool json) {
    auto l = load(g);
    if (!l->fleet) return fail(*l, json);
    std::string node = all ? "" : this_node(g);
    if (!all && !l->fleet->index.count(node)) return fail(*l, json, not_in_fleets(*l->fleet, node, "the configuration"));
    const auto entries = plan::render_hosts_entries(*l->fleet, node);
    if (!json) {
        std::cout << plan::render_hosts_file(entries);
        return kOk;
    }
    // {"version", "node", "entries": [{"address", "name"}]}: the lines of the hosts file, in order.
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& e : entries) list.push_back({{"address", e.addr.str()}, {"name", e.name}});
    nlohmann::ordered_json out{{"version", 1}, {"node", all ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(node)}};
    out["entries"] = std::move(list);
    std::cout << out.dump(2) << "\n";
    return kOk;
}

int cmd_render_wg_quick(const Globals& g, const std::string& fleet_opt, bool json) {
    auto l = load(g);
    if (!l->fleet) return fail(*l, json);
    std::string node = this_node(g);
    if (!l->fleet->index.count(node)) return fail(*l, json, not_in_fleets(*l->fleet, node, "the configuration"));
    const auto& ms = l->fleet->index.at(node);
    std::string fleet = fleet_opt;
    if (fleet.empty()) {
        if (ms.size() > 1) {
            std::string names;
            for (const auto& m : ms) names += (names.empty() ? "" : ", ") + m.fleet;
            return fail(*l, json, fmt::format("node '{}' is in several fleets ({}): choose one with --fleet", node, names));
        }
        fleet = ms.front().fleet;
    } else if (std::none_of(ms.begin(), ms.end(), [&](const auto& m) { return m.fleet == fleet; })) {
        return fail(*l, json, fmt::format("node '{}' is not in fleet '{}'", node, fleet));
    }
    // The key is printed only when this machine holds it, as `wg showconf` would.
    std::optional<std::string> key;
    system::FileKeyStore keys;
    std::string path = plan::private_key_path(l->cfg(), fleet);
    if (auto loaded = keys.load(path); loaded && loaded->has_value()) key = (*loaded)->base64_for_storage();
    if (keys.loose_permissions) std::cerr << fmt::format("wg-fleet: warning: {} is readable by group or others; it should be 0600\n", path);
    std::string text = plan::render_wg_quick(*l->fleet, fleet, node, key);
    if (json) print_files(node, {{.name = l->cfg().fleets.at(fleet).interface + ".conf", .content = std::move(text)}});
    else std::cout << text;
    return kOk;
}

namespace {

// A rendered file written into the directory the user named: whole or not at all, readable by all
// (it holds no secret, only key file paths). False after printing why it failed.
bool write_rendered(const Globals& g, const std::string& path, const std::string& content, std::string* error) {
    if (auto s = linux_::write_file_atomic(path, content, 0644); !s) {
        *error = s.error().message;
        return false;
    }
    if (g.verbose) std::cerr << fmt::format("wg-fleet: wrote {}\n", path);
    return true;
}

// Writes each file into `dir` (its path set); false, with the error, at the first that fails.
bool write_all(const Globals& g, const std::string& dir, std::vector<RenderedFile>& files, std::string* error) {
    for (auto& f : files) {
        f.path = dir + "/" + f.name;
        if (!write_rendered(g, *f.path, f.content, error)) return false;
    }
    return true;
}

// One module per node of every fleet, and default.nix naming them by host name.
int write_nixos_dir(const Globals& g, const Loaded& l, const std::string& dir, bool json) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(l, json, fmt::format("create {}: {}", dir, ec.message()));
    std::vector<std::string> nodes;
    std::vector<RenderedFile> files;
    for (const auto& [node, ms] : l.fleet->index) {
        files.push_back({.name = node + ".nix", .content = plan::render_nixos_module(*l.fleet, node, g.config)});
        nodes.push_back(node);
    }
    files.push_back({.name = "default.nix", .content = plan::render_nixos_index(nodes)});
    std::string error;
    if (!write_all(g, dir, files, &error)) return fail(l, json, error);
    if (json) print_files(std::nullopt, files);
    return kOk;
}

}  // namespace

int cmd_render_nixos(const Globals& g, const std::string& all_dir, bool json) {
    auto l = load(g);
    if (!l->fleet) return fail(*l, json);
    if (!all_dir.empty()) return write_nixos_dir(g, *l, all_dir, json);
    std::string node = this_node(g);
    if (!l->fleet->index.count(node)) return fail(*l, json, not_in_fleets(*l->fleet, node, "the configuration"));
    std::string text = plan::render_nixos_module(*l->fleet, node, g.config);
    if (json) print_files(node, {{.name = node + ".nix", .content = std::move(text)}});
    else std::cout << text;
    return kOk;
}

int cmd_render_networkd(const Globals& g, const std::string& dir, bool json) {
    auto l = load(g);
    if (!l->fleet) return fail(*l, json);
    std::string node = this_node(g);
    if (!l->fleet->index.count(node)) return fail(*l, json, not_in_fleets(*l->fleet, node, "the configuration"));
    std::vector<RenderedFile> files;
    for (auto& f : plan::render_networkd(plan::render_host(*l->fleet, node), node))
        files.push_back({.name = std::move(f.name), .content = std::move(f.content)});
    std::string error;
    if (!dir.empty() && !write_all(g, dir, files, &error)) return fail(*l, json, error);
    if (json) print_files(node, files);
    else if (dir.empty())
        for (size_t i = 0; i < files.size(); ++i) std::cout << (i ? "\n" : "") << "# ==> " << files[i].name << " <==\n" << files[i].content;
    return kOk;
}

namespace {
const char* const kJsonHelp = "Print the files as JSON: {\"version\": 1, \"node\", \"files\": [{\"name\", \"path\", \"content\"}]}";
}  // namespace

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

}  // namespace wgf::cli
