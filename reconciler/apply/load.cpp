#include "apply/load.hpp"

#include "apply/published_keys.hpp"
#include "plan/validate.hpp"

namespace wgf::apply {

std::unique_ptr<Loaded> load(const LoadOptions& o, const std::function<void(const model::Config&)>& parsed) {
    auto l = std::make_unique<Loaded>();
    l->timings.restart();
    std::string dropins = o.dropin_dir ? *o.dropin_dir : config::default_dropin_dir(o.config);
    auto files = config::read_config_files(o.config, dropins, l->sources, l->diags);
    if (l->diags.has_errors()) return l;
    l->parsed = config::parse(files, l->sources, l->diags);
    l->files = std::move(files);
    model::Config& cfg = l->parsed.config;
    if (o.state_dir) cfg.state_dir = *o.state_dir;
    if (o.keys_only_from) cfg.keys_dir = *o.keys_only_from;
    if (o.files_root) {
        cfg.hosts_file = *o.files_root + cfg.hosts_file;
        cfg.http_routes_dir = *o.files_root + cfg.http_routes_dir;
    }
    l->timings.lap("parse");
    if (l->diags.has_errors()) return l;
    merge_published_keys(l->parsed, l->diags, o.keys_only_from.has_value());
    if (parsed && !l->diags.has_errors()) parsed(cfg);
    auto fw = std::make_unique<plan::Fleetwide>(cfg);
    plan::validate(cfg, fw->plan, fw->index, l->parsed.tree, l->diags);
    if (!l->diags.has_errors()) l->fleet = std::move(fw);
    l->timings.lap("validate");
    return l;
}

}  // namespace wgf::apply
