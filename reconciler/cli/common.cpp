#include "cli/common.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "plan/validate.hpp"

namespace wgf::cli {
namespace {

// Public keys published as <keys_dir>/<fleet>/<node>.pub fill in members the YAML leaves without one.
void merge_published_keys(Loaded& l, bool replace) {
    auto& cfg = l.parsed.config;
    if (!cfg.keys_dir) return;
    auto merge = [&](const std::string& fleet, const std::string& node, std::optional<model::Key>& key, const std::string& path) {
        std::string file = plan::published_key_path(*cfg.keys_dir, fleet, node);
        std::ifstream in(file);
        if (!in) {
            if (replace) key.reset();
            return;
        }
        std::string text;
        std::getline(in, text);
        while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
        std::string why;
        auto k = model::Key::from_base64(text, &why);
        uint32_t id = l.sources.add(file, text + "\n");
        if (!k) {
            l.diags.error(config::Loc{id, 1, 1}, path + ".public_key", fmt::format("{} — {}", config::quote(text), why));
            return;
        }
        if (key && *key != *k && !replace) {
            l.diags.warning(config::locate(l.parsed.tree, path + ".public_key"), path + ".public_key",
                            fmt::format("differs from the published key in {}; using the YAML's", file));
            return;
        }
        key = k;
    };
    for (auto& [fname, f] : cfg.fleets) {
        for (auto& [n, m] : f.controllers) merge(fname, n, m.public_key, fmt::format("fleets.{}.controllers.{}", fname, n));
        for (auto& [n, m] : f.peers) merge(fname, n, m.public_key, fmt::format("fleets.{}.peers.{}", fname, n));
        if (f.style == model::FleetStyle::subnet) merge(fname, f.server, f.server_public_key, fmt::format("fleets.{}", fname));
    }
}

}  // namespace

std::unique_ptr<Loaded> load(const Globals& g, const std::function<void(const model::Config&)>& parsed) {
    auto l = std::make_unique<Loaded>();
    l->timings.restart();
    std::string dropins = g.dropin_dir ? *g.dropin_dir : config::default_dropin_dir(g.config);
    auto files = config::read_config_files(g.config, dropins, l->sources, l->diags);
    if (!l->diags.has_errors()) {
        l->parsed = config::parse(files, l->sources, l->diags);
        if (g.state_dir) l->parsed.config.state_dir = *g.state_dir;
        if (g.keys_override) l->parsed.config.keys_dir = *g.keys_override;
        if (g.files_root) {
            l->parsed.config.hosts_file = *g.files_root + l->parsed.config.hosts_file;
            l->parsed.config.http_routes_dir = *g.files_root + l->parsed.config.http_routes_dir;
        }
        l->timings.lap("parse");
        if (!l->diags.has_errors()) {
            merge_published_keys(*l, g.keys_override.has_value());
            if (parsed && !l->diags.has_errors()) parsed(l->parsed.config);
            auto fw = std::make_unique<plan::Fleetwide>(l->parsed.config);
            plan::validate(l->parsed.config, fw->plan, fw->index, l->parsed.tree, l->diags);
            if (!l->diags.has_errors()) l->fleet = std::move(fw);
            l->timings.lap("validate");
        }
    }
    std::cerr << config::render_all(l->diags, l->sources, g.quiet == 0);
    return l;
}

std::string this_node(const Globals& g) {
    if (g.node) return *g.node;
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "";
    std::string h(buf);
    return h.substr(0, h.find('.'));
}

}  // namespace wgf::cli
