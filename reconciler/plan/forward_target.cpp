#include "plan/forward_target.hpp"

#include <algorithm>

namespace wgf::plan {

std::vector<Reach> reachable_over(const model::Config& cfg, const AddressPlan& plan, const std::string& fleet, const std::string& node) {
    std::vector<Reach> out;
    const model::Fleet& f = cfg.fleets.at(fleet);
    out.push_back({.prefix = plan.fleets.at(fleet).prefix, .announcer = {}});
    if (f.ipv4) out.push_back({.prefix = *f.ipv4, .announcer = {}});
    for (const auto* members : {&f.controllers, &f.peers})
        for (const auto& [name, m] : *members)
            if (name != node)
                for (const auto& r : m.routes) out.push_back({.prefix = r, .announcer = name});
    return out;
}

std::vector<std::string> fleets_reaching(const model::Config& cfg, const AddressPlan& plan, const std::vector<Membership>& memberships,
                                         const std::string& node, const model::IpAddr& addr) {
    std::vector<std::string> out;
    for (const auto& mb : memberships) {
        auto reach = reachable_over(cfg, plan, mb.fleet, node);
        if (std::any_of(reach.begin(), reach.end(), [&](const Reach& r) { return r.prefix.contains(addr); })) out.push_back(mb.fleet);
    }
    return out;
}

}  // namespace wgf::plan
