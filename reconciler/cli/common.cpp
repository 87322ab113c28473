#include "cli/common.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "apply/published_keys.hpp"
#include "plan/validate.hpp"

namespace wgf::cli {
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
            apply::merge_published_keys(l->parsed, l->diags, g.keys_override.has_value());
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
