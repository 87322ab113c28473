#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"

namespace wgf::cli {

// Validates the whole fleet: parse, address plan, cross references, then renders every node's
// desired state, so a file that passes check can be applied on any of its nodes.
int cmd_check(const Globals& g) {
    auto l = load(g);
    if (!l->fleet) {
        std::cerr << fmt::format("{}: {} error{}, {} warning{}; nothing would be applied\n", g.config, l->diags.errors(),
                                 l->diags.errors() == 1 ? "" : "s", l->diags.warnings(), l->diags.warnings() == 1 ? "" : "s");
        return kError;
    }
    size_t peers = 0, pending = 0;
    for (const auto& [node, ms] : l->fleet->index) {
        auto hs = plan::render_host(*l->fleet, node);
        for (const auto& [name, w] : hs.interfaces) {
            peers += w.peers.size();
            pending += w.pending.size();
        }
    }
    if (g.quiet == 0)
        std::cout << fmt::format("{}: ok — {} fleet{}, {} node{}, {} peer entr{} ({} pending), {} warning{}\n", g.config,
                                 l->cfg().fleets.size(), l->cfg().fleets.size() == 1 ? "" : "s", l->fleet->index.size(),
                                 l->fleet->index.size() == 1 ? "" : "s", peers, peers == 1 ? "y" : "ies", pending,
                                 l->diags.warnings(), l->diags.warnings() == 1 ? "" : "s");
    return kOk;
}

}  // namespace wgf::cli
