#include "inputs/load.hpp"

#include <utility>

#include "config/reparse.hpp"
#include "inputs/enrolled.hpp"
#include "inputs/published_keys.hpp"
#include "plan/validate.hpp"

namespace wgf::inputs {

namespace {

// The tree of `files`, made from the previous load's when only the main file changed and the
// change can be parsed by its part. The previous load gives up its tree for it (nothing reads a
// loaded configuration's tree after its load): it is left with none, and an edit after it is
// parsed whole.
std::optional<config::Node> reparsed(Loaded* previous, const std::vector<config::SourceFile>& files) {
    if (!previous || !previous->fleet || !previous->parsed.tree.is_map() || previous->files.size() != 1 || files.size() != 1)
        return std::nullopt;
    const config::SourceFile& was = previous->files.front();
    if (was.name != files.front().name) return std::nullopt;
    if (!config::reparse_edit(previous->parsed.tree, was.text, files.front().text, 0)) return std::nullopt;
    return std::exchange(previous->parsed.tree, config::Node{});
}

}  // namespace

std::unique_ptr<Loaded> load(const LoadOptions& o, const std::function<void(const model::Config&)>& parsed, Loaded* previous) {
    auto l = std::make_unique<Loaded>();
    l->timings.restart();
    std::string dropins = o.dropin_dir ? *o.dropin_dir : config::default_dropin_dir(o.config);
    auto files = config::read_config_files(o.config, dropins, l->sources, l->diags);
    if (l->diags.has_errors()) return l;
    const char* phase = "parse";
    // The previous tree's locations are in source 0, the main file, as this one's will be.
    if (auto tree = l->sources.size() == 0 ? reparsed(previous, files) : std::nullopt) {
        l->sources.add(files.front().name, files.front().text);
        l->parsed = config::parse_tree(std::move(*tree), l->diags);
        phase = "parse (edited part)";
    } else {
        l->parsed = config::parse(files, l->sources, l->diags);
    }
    l->files = std::move(files);
    model::Config& cfg = l->parsed.config;
    if (o.state_dir) cfg.state_dir = *o.state_dir;
    if (o.keys_only_from) cfg.keys_dir = *o.keys_only_from;
    if (o.files_root) {
        cfg.hosts_file = *o.files_root + cfg.hosts_file;
        cfg.http_routes_dir = *o.files_root + cfg.http_routes_dir;
    }
    l->timings.lap(phase);
    // A file with structural errors is validated too, as far as it was read (parsed.broken says
    // what to skip), so one run reports every error; but it is never used for more.
    const bool structural = l->diags.has_errors();
    if (l->parsed.broken.hit("")) return l;
    merge_published_keys(l->parsed, l->diags, o.keys_only_from.has_value());
    // The run-time members are checked against the fleets they join: not against broken ones.
    if (!l->diags.has_errors()) merge_dynamic_members(l->parsed, read_dynamic_members(cfg, l->diags), l->diags);
    if (parsed && !l->diags.has_errors()) parsed(cfg);
    // An edit that keeps every name and address setting shares the previous address plan.
    auto fw = std::make_unique<plan::Fleetwide>(cfg, previous && !structural ? previous->fleet.get() : nullptr);
    const bool kept = fw->reused_plan();
    plan::validate(cfg, fw->plan, fw->index, l->parsed.tree, l->diags, l->parsed.broken);
    if (!l->diags.has_errors()) l->fleet = std::move(fw);
    l->timings.lap(kept ? "validate (plan kept)" : "validate");
    return l;
}

}  // namespace wgf::inputs
