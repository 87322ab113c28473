#include "plan/index.hpp"

namespace wgf::plan {

NodeIndex index_nodes(const model::Config& cfg) {
    NodeIndex idx;
    for (const auto& [name, f] : cfg.fleets) {
        for (const auto& [n, m] : f.controllers) idx[n].push_back({name, model::Role::controller});
        if (f.style == model::FleetStyle::subnet) idx[f.server].push_back({name, model::Role::server});
        // Peers come in name order, so each goes right after the one before: hinting there keeps
        // indexing a large fleet linear.
        auto hint = idx.begin();
        for (const auto& [n, m] : f.peers) {
            if (f.controllers.count(n) || (f.style == model::FleetStyle::subnet && n == f.server)) continue;
            hint = idx.try_emplace(hint, n);
            hint->second.push_back({name, model::Role::peer});
            ++hint;
        }
    }
    return idx;
}

const model::Member* find_member(const model::Fleet& f, const std::string& node) {
    if (auto it = f.controllers.find(node); it != f.controllers.end()) return &it->second;
    if (auto it = f.peers.find(node); it != f.peers.end()) return &it->second;
    return nullptr;
}

std::optional<uint16_t> listen_port(const model::Fleet& f, model::Role role, const std::string& node) {
    if (role == model::Role::server) return f.port;
    const model::Member* m = find_member(f, node);
    if (!m) return std::nullopt;
    // The fleet port, as clan does; an endpoint's own port is what others dial (a NAT mapping).
    if (role == model::Role::controller || (f.topology == model::Topology::mesh && m->endpoint)) return f.port;
    return std::nullopt;
}

}  // namespace wgf::plan
