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

}  // namespace wgf::cli
