#include "apply/resolve.hpp"

#include <map>
#include <optional>

#include <fmt/format.h>

namespace wgf::apply {

void resolve_endpoints(model::HostState& desired, const model::Labels& labels, Resolver& resolver, std::vector<std::string>& warnings) {
    std::map<std::string, std::optional<model::IpAddr>> cache;
    for (auto& [ifname, w] : desired.interfaces)
        for (auto& [key, p] : w.peers) {
            if (!p.endpoint || model::IpAddr::parse(p.endpoint->host)) continue;
            auto it = cache.find(p.endpoint->host);
            if (it == cache.end()) it = cache.emplace(p.endpoint->host, resolver.resolve(p.endpoint->host)).first;
            if (it->second) {
                p.endpoint->host = it->second->str();
            } else {
                warnings.push_back(fmt::format("peer {} on {}: endpoint {} does not resolve; left without an endpoint until it does",
                                               labels.peer_name(ifname, key), ifname, p.endpoint->str()));
                p.endpoint.reset();
            }
        }
}

}  // namespace wgf::apply
