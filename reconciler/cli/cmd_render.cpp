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

}  // namespace wgf::cli
