#include "cli/common.hpp"

#include <unistd.h>

#include <iostream>

namespace wgf::cli {
inputs::LoadOptions load_options(const Globals& g) {
    return {.config = g.config,
            .dropin_dir = g.dropin_dir,
            .state_dir = g.state_dir,
            .keys_only_from = g.keys_only_from,
            .files_root = g.files_root};
}

std::unique_ptr<Loaded> load(const Globals& g, const std::function<void(const model::Config&)>& parsed) {
    auto l = inputs::load(load_options(g), parsed);
    std::cerr << config::render_all(l->diags, l->sources, g.quiet == 0);
    return l;
}

void keep_until_exit(std::shared_ptr<void> value) {
    // Never destroyed: a function-local static would be, at exit.
    static auto* kept = new std::vector<std::shared_ptr<void>>;
    kept->push_back(std::move(value));
}

std::string this_node(const Globals& g) {
    if (g.node) return *g.node;
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "";
    std::string h(buf);
    return h.substr(0, h.find('.'));
}

}  // namespace wgf::cli
