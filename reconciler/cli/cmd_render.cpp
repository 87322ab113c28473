#include <algorithm>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "linux/files.hpp"
#include "plan/render_networkd.hpp"
#include "plan/render_nixos.hpp"
#include "system/keys.hpp"

namespace wgf::cli {
namespace {

bool in_fleets(const Loaded& l, const std::string& node) {
    if (l.fleet->index.count(node)) return true;
    std::cerr << "wg-fleet: " << not_in_fleets(*l.fleet, node, "the configuration") << "\n";
    return false;
}

}  // namespace

int cmd_render_hosts(const Globals& g, bool all) {
    auto l = load(g);
    if (!l->fleet) return kError;
    std::string node = all ? "" : this_node(g);
    if (!all && !in_fleets(*l, node)) return kError;
    std::cout << plan::render_hosts_file(plan::render_hosts_entries(*l->fleet, node));
    return kOk;
}

int cmd_render_wg_quick(const Globals& g, const std::string& fleet_opt) {
    auto l = load(g);
    if (!l->fleet) return kError;
    std::string node = this_node(g);
    if (!in_fleets(*l, node)) return kError;
    const auto& ms = l->fleet->index.at(node);
    std::string fleet = fleet_opt;
    if (fleet.empty()) {
        if (ms.size() > 1) {
            std::string names;
            for (const auto& m : ms) names += (names.empty() ? "" : ", ") + m.fleet;
            std::cerr << fmt::format("wg-fleet: node '{}' is in several fleets ({}): choose one with --fleet\n", node, names);
            return kError;
        }
        fleet = ms.front().fleet;
    } else if (std::none_of(ms.begin(), ms.end(), [&](const auto& m) { return m.fleet == fleet; })) {
        std::cerr << fmt::format("wg-fleet: node '{}' is not in fleet '{}'\n", node, fleet);
        return kError;
    }
    // The key is printed only when this machine holds it, as `wg showconf` would.
    std::optional<std::string> key;
    system::FileKeyStore keys;
    std::string path = plan::private_key_path(l->cfg(), fleet);
    if (auto loaded = keys.load(path); loaded && loaded->has_value()) key = (*loaded)->base64_for_storage();
    if (keys.loose_permissions) std::cerr << fmt::format("wg-fleet: warning: {} is readable by group or others; it should be 0600\n", path);
    std::cout << plan::render_wg_quick(*l->fleet, fleet, node, key);
    return kOk;
}

namespace {

// A rendered file written into the directory the user named: whole or not at all, readable by all
// (it holds no secret, only key file paths). False after printing why it failed.
bool write_rendered(const Globals& g, const std::string& path, const std::string& content) {
    if (auto s = linux_::write_file_atomic(path, content, 0644); !s) {
        std::cerr << fmt::format("wg-fleet: {}\n", s.error().message);
        return false;
    }
    if (g.verbose) std::cerr << fmt::format("wg-fleet: wrote {}\n", path);
    return true;
}

// One module per node of every fleet, and default.nix naming them by host name.
int write_nixos_dir(const Globals& g, const Loaded& l, const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        std::cerr << fmt::format("wg-fleet: create {}: {}\n", dir, ec.message());
        return kError;
    }
    std::vector<std::string> nodes;
    for (const auto& [node, ms] : l.fleet->index) {
        if (!write_rendered(g, fmt::format("{}/{}.nix", dir, node), plan::render_nixos_module(*l.fleet, node, g.config))) return kError;
        nodes.push_back(node);
    }
    return write_rendered(g, dir + "/default.nix", plan::render_nixos_index(nodes)) ? kOk : kError;
}

}  // namespace

int cmd_render_nixos(const Globals& g, const std::string& all_dir) {
    auto l = load(g);
    if (!l->fleet) return kError;
    if (!all_dir.empty()) return write_nixos_dir(g, *l, all_dir);
    std::string node = this_node(g);
    if (!in_fleets(*l, node)) return kError;
    std::cout << plan::render_nixos_module(*l->fleet, node, g.config);
    return kOk;
}

int cmd_render_networkd(const Globals& g, const std::string& dir) {
    auto l = load(g);
    if (!l->fleet) return kError;
    std::string node = this_node(g);
    if (!in_fleets(*l, node)) return kError;
    const auto files = plan::render_networkd(plan::render_host(*l->fleet, node), node);
    if (dir.empty()) {
        for (size_t i = 0; i < files.size(); ++i) std::cout << (i ? "\n" : "") << "# ==> " << files[i].name << " <==\n" << files[i].content;
        return kOk;
    }
    for (const auto& f : files)
        if (!write_rendered(g, dir + "/" + f.name, f.content)) return kError;
    return kOk;
}

void add_render(CLI::App& app, Context& ctx) {
    struct Options {
        bool all = false;
        std::string fleet;
    };
    auto o = std::make_shared<Options>();
    auto* render = app.add_subcommand("render", "Print a node's configuration in another format (offline)");
    render->require_subcommand(1);
    auto* hosts = render->add_subcommand("hosts", "Hosts-file entries of every member of the node's fleets");
    hosts->add_flag("--all", o->all, "Every fleet, not only the node's");
    hosts->callback([&ctx, o] { ctx.rc = cmd_render_hosts(ctx.g, o->all); });
    auto* wgq = render->add_subcommand("wg-quick", "The node's wg-quick config for one fleet");
    wgq->add_option("--fleet", o->fleet, "The fleet (needed when the node is in several)");
    wgq->callback([&ctx, o] { ctx.rc = cmd_render_wg_quick(ctx.g, o->fleet); });
    auto nixos_dir = std::make_shared<std::string>();
    auto* nixos = render->add_subcommand("nixos", "The node's NixOS module (networking.wireguard, firewall, sysctls, hosts, NAT)");
    nixos
        ->add_option("--all", *nixos_dir, "Write DIR/NODE.nix for every node of every fleet and DIR/default.nix mapping host names to them")
        ->type_name("DIR");
    nixos->callback([&ctx, nixos_dir] { ctx.rc = cmd_render_nixos(ctx.g, *nixos_dir); });
    auto* nwd = render->add_subcommand("networkd", "The node's systemd-networkd .netdev and .network files, one pair per interface");
    auto nwd_dir = std::make_shared<std::string>();
    nwd->add_option("--dir", *nwd_dir, "Write the files into DIR (mode 0644) instead of printing them")->type_name("DIR");
    nwd->callback([&ctx, nwd_dir] { ctx.rc = cmd_render_networkd(ctx.g, *nwd_dir); });
}

}  // namespace wgf::cli
