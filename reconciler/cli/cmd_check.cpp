#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include <iostream>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "config/tree.hpp"
#include "linux/nft.hpp"
#include "plan/foreign_firewall.hpp"
#include "plan/rotation.hpp"

namespace wgf::cli {
namespace {

// Nodes whose render covers every path a render can take: every controller and server (each
// is linear in its fleet), and one peer per (fleet, designated controller, whether it has
// routes, its exit node). Rendering every peer would be quadratic: in a hub each peer carries every other
// peer's routes, so 10,000 peers with 1,000 routes make ten million entries to build and drop.
std::vector<std::string> nodes_to_render(const plan::Fleetwide& fw) {
    std::vector<std::string> out;
    std::set<std::tuple<std::string, std::string, bool, std::string>> shapes;
    for (const auto& [node, ms] : fw.index) {
        bool pick = false;
        for (const auto& mb : ms) {
            if (mb.role != model::Role::peer) {
                pick = true;
                continue;
            }
            const auto& f = fw.cfg.fleets.at(mb.fleet);
            const auto& m = f.peers.at(node);
            auto dc = plan::designated_controller(f, m);
            const std::string* exit = model::exit_node_of(f, m);
            if (shapes.emplace(mb.fleet, dc.value_or(""), !m.routes.empty(), exit ? *exit : "").second) pick = true;
        }
        if (pick) out.push_back(node);
    }
    return out;
}

size_t pending_members(const model::Config& cfg) {
    size_t n = 0;
    for (const auto& [name, f] : cfg.fleets) {
        for (const auto* group : {&f.controllers, &f.peers})
            for (const auto& [node, m] : *group) n += !m.public_key;
        if (f.style == model::FleetStyle::subnet && !f.peers.empty()) n += !f.server_public_key;
    }
    return n;
}

std::string plural(size_t n, const char* word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

// Someone else's firewall, as plan sees it: when check runs as root on a machine that is one of
// the fleet's nodes (found as plan finds it), the other tables' dropping chains are read, read
// only, and the warnings plan would give are printed. Whatever cannot be read gives no warning:
// check stays a check of the file, and never fails or changes anything for this.
std::vector<std::string> foreign_firewall_warnings_here(const Globals& g, const plan::Fleetwide& fw) {
    if (geteuid() != 0) return {};
    const std::string node = this_node(g);
    if (!fw.index.count(node)) return {};
    const plan::Desired d = plan::render_host(fw, node, plan::RenderOptions{false});
    linux_::Nft nft;
    auto live = nft.read();
    if (!live) return {};
    plan::LiveFacts facts;
    facts.foreign_drops = std::move(live->foreign_drops);
    facts.legacy_tables = std::move(live->legacy_tables);
    return plan::foreign_firewall_warnings(d.state, facts, d.labels.foreign_accept);
}

// key_max_age: a warning for each member whose key is older, by the modification time of its
// published key in keys_dir (written once per key: publishing the same key again leaves the
// file alone), or, for this node, of its own key file. Located at the member.
void key_age_warnings(const Globals& g, Loaded& l, config::Diagnostics& out) {
    const model::Config& cfg = l.cfg();
    const int64_t now = time(nullptr);
    const std::string self = this_node(g);
    auto mtime = [](const std::string& path) -> std::optional<int64_t> {
        struct stat st {};
        if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
        return static_cast<int64_t>(st.st_mtim.tv_sec);
    };
    for (const auto& entry : cfg.fleets) {
        const std::string& fname = entry.first;  // a plain reference: a lambda captures it (clang 14)
        const model::Fleet& f = entry.second;
        const auto max_age = f.key_max_age ? f.key_max_age : cfg.key_max_age;
        if (!max_age) continue;
        auto check = [&](const std::string& node, const std::string& path) {
            std::optional<int64_t> t;
            std::string source;
            if (node == self) {
                source = plan::private_key_path(cfg, fname);
                t = mtime(source);
            }
            if (!t && cfg.keys_dir) {
                source = plan::published_key_path(*cfg.keys_dir, fname, node);
                t = mtime(source);
            }
            if (!t) return;
            if (auto w = plan::key_age_warning(fname, node, *t, now, *max_age, source)) {
                const config::Loc at = config::locate(l.parsed.tree, path, true);
                out.warning(at, path, *w);
                l.diags.warning(at, path, *w);
            }
        };
        for (const auto& [n, m] : f.controllers) check(n, fmt::format("fleets.{}.controllers.{}", fname, n));
        for (const auto& [n, m] : f.peers)
            if (!m.dynamic) check(n, fmt::format("fleets.{}.peers.{}", fname, n));
        if (f.style == model::FleetStyle::subnet && !f.server.empty()) check(f.server, fmt::format("fleets.{}", fname));
    }
}

}  // namespace

// Validates the whole fleet: parse, address plan, cross references (every node's part of the
// file), then renders the nodes that cover every rendering path, and every fleet's hosts file,
// so a file that passes check can be applied on any of its nodes. In a format other than text,
// stdout holds only the diagnostics in that format (every one, warnings too), and the verdict
// goes to stderr with the diagnostics as text.
int cmd_check(const Globals& g, output::Format format) {
    const bool text = format == output::Format::text;
    auto l = load(g);
    config::Diagnostics ages;
    if (l->fleet) key_age_warnings(g, *l, ages);
    if (text && g.quiet == 0 && ages.warnings()) std::cerr << config::render_all(ages, l->sources);
    if (format == output::Format::json) std::cout << output::diagnostics_json(l->diags, l->sources);
    else if (!text) print_findings(g, format, output::findings_of(l->diags, l->sources));
    if (!l->fleet) {
        std::cerr << fmt::format("{}: {}, {}; nothing would be applied\n", g.config, plural(l->diags.errors(), "error"),
                                 plural(l->diags.warnings(), "warning"));
        return kError;
    }
    (void)plan::render_hosts_file(plan::render_hosts_entries(*l->fleet, ""));
    for (const auto& node : nodes_to_render(*l->fleet)) (void)plan::render_host(*l->fleet, node, plan::RenderOptions{false});
    for (const auto& w : foreign_firewall_warnings_here(g, *l->fleet)) std::cerr << "wg-fleet: warning: " << w << "\n";
    if (g.quiet == 0)
        (text ? std::cout : std::cerr) << fmt::format("{}: ok — {}, {} ({} pending), {}\n", g.config,
                                                      plural(l->cfg().fleets.size(), "fleet"), plural(l->fleet->index.size(), "node"),
                                                      pending_members(l->cfg()), plural(l->diags.warnings(), "warning"));
    return kOk;
}

}  // namespace wgf::cli
