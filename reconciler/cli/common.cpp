#include "cli/common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "system/journal.hpp"

namespace wgf::cli {
inputs::LoadOptions load_options(const Globals& g) {
    return {.config = g.config,
            .dropin_dir = g.dropin_dir,
            .state_dir = g.state_dir,
            .keys_only_from = g.keys_only_from,
            .files_root = g.files_root};
}

config::Pending pending_mode(const Globals& g) {
    if (g.verbose > 0) return config::Pending::each;
    return g.hide_pending ? config::Pending::none : config::Pending::summary;
}

std::unique_ptr<Loaded> load(const Globals& g, const std::function<void(const model::Config&)>& parsed,
                             std::vector<output::Finding>* findings) {
    auto l = inputs::load(load_options(g), parsed);
    std::cerr << config::render_all(l->diags, l->sources, g.quiet == 0, pending_mode(g));
    if (findings) {
        auto more = output::findings_of(l->diags, l->sources);
        findings->insert(findings->end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    return l;
}

void print_findings(const Globals& g, output::Format format, const std::vector<output::Finding>& findings) {
    auto env = [](const char* name) -> std::string {
        const char* v = std::getenv(name);
        return v ? v : "";
    };
    std::error_code ec;
    const std::string cwd = std::filesystem::current_path(ec).string();
    if (format == output::Format::github) std::cout << output::github_annotations(findings, env("GITHUB_WORKSPACE"), cwd);
    else if (format == output::Format::gitlab) std::cout << output::gitlab_report(findings, g.config, env("CI_PROJECT_DIR"), cwd);
}

void record_last_run(const std::string& state_dir, int64_t time, const apply::RunResult& r) {
    const size_t ops = r.applied ? r.applied->done.size() : 0;
    if (auto s = system::write_last_run(state_dir, {.time = time, .ok = r.ok(), .operations = ops}); !s)
        std::cerr << "wg-fleet: warning: " << s.error().message << "\n";
}

void keep_until_exit(std::shared_ptr<void> value) {
    // Never destroyed: a function-local static would be, at exit.
    static auto* kept = new std::vector<std::shared_ptr<void>>;
    kept->push_back(std::move(value));
}

std::string not_in_fleets(const plan::Fleetwide& fw, const std::string& node, const std::string& file) {
    std::vector<std::string_view> nodes;
    nodes.reserve(fw.index.size());
    for (const auto& [name, ms] : fw.index) nodes.emplace_back(name);
    auto near = config::nearest_word(node, nodes);
    return fmt::format("node '{}' is in no fleet of {}{} (use --node NAME)", node, file,
                       near ? fmt::format("; did you mean '{}'?", *near) : "");
}

std::string this_node(const Globals& g) {
    if (g.node) return *g.node;
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "";
    std::string h(buf);
    return h.substr(0, h.find('.'));
}

}  // namespace wgf::cli
