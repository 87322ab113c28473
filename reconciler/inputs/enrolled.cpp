#include "inputs/enrolled.hpp"

#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include <set>
#include <unordered_set>

#include "plan/address_plan.hpp"
#include "store/store.hpp"

namespace wgf::inputs {
namespace {

uint64_t host_bits(const model::Prefix& subnet, const model::IpAddr& a) {
    uint64_t v = 0;
    const size_t bytes = a.is_v4() ? 4 : 16;
    for (size_t i = bytes >= 8 ? bytes - 8 : 0; i < bytes; ++i) v = (v << 8) | a.bytes[i];
    const unsigned host = a.bits() - subnet.len;
    return host >= 64 ? v : v & ((uint64_t{1} << host) - 1);
}

}  // namespace

std::string enrolled_name(const std::string& fleet, const model::Prefix& subnet, const model::IpAddr& address) {
    return fmt::format("{}.{:x}", fleet, host_bits(subnet, address));
}

std::vector<DynamicMember> read_enrolled(const model::Config& cfg, config::Diagnostics& diags) {
    const std::string path = serve::store_path(cfg.state_dir);
    // A user other than root checking the file on a node: state_dir is root's (0700). The store
    // matters to the commands that change the node, which run as root and get the error.
    if (geteuid() != 0 && access(path.c_str(), R_OK) != 0 && errno == EACCES) {
        diags.warning(config::Loc{}, "state_dir", fmt::format("{}: not readable by this user: enrolled clients left out", path));
        return {};
    }
    std::vector<serve::Client> clients;
    try {
        clients = serve::read_clients(path);
    } catch (const serve::StoreError& e) {
        diags.error(config::Loc{}, "state_dir", fmt::format("cannot read the enrolled clients: {}", e.what()));
        return {};
    }
    std::vector<DynamicMember> out;
    out.reserve(clients.size());
    for (auto& c : clients) {
        auto f = cfg.fleets.find(c.fleet);
        // The name needs the subnet; a client of a fleet without one is reported by the merge.
        std::string name = f != cfg.fleets.end() && f->second.subnet ? enrolled_name(c.fleet, *f->second.subnet, c.address)
                                                                     : c.fleet + "." + c.address.str();
        out.push_back(DynamicMember{.fleet = std::move(c.fleet),
                                    .name = std::move(name),
                                    .public_key = c.public_key,
                                    .address = c.address,
                                    .host_name = std::move(c.host_name),
                                    .source = path});
    }
    return out;
}

void merge_dynamic_members(config::Parsed& parsed, const std::vector<DynamicMember>& members, config::Diagnostics& diags) {
    model::Config& cfg = parsed.config;
    // Per fleet, the keys and addresses the file's members have (computed at the fleet's first
    // member, before any is added): a member sharing one is left out.
    std::map<std::string, std::unordered_set<std::string>> keys;
    std::map<std::string, std::set<model::IpAddr>> planned;  // the file's members' addresses
    // Per fleet, the names its hosts entries hold: the file's members' and the host names given
    // so far. A second entry with the same name would make the name resolve to two machines.
    std::map<std::string, std::set<std::string>> hosts_names;
    auto skip = [&](const DynamicMember& m, const std::string& why) {
        diags.warning(config::Loc{}, "fleets." + m.fleet,
                      fmt::format("{}: client {} ({}) left out: {}", m.source, m.address.str(), m.public_key.base64(), why));
    };
    for (const auto& m : members) {
        auto it = cfg.fleets.find(m.fleet);
        if (it == cfg.fleets.end()) {
            skip(m, "no such fleet in the file");
            continue;
        }
        model::Fleet& f = it->second;
        if (f.style != model::FleetStyle::subnet || !f.subnet) {
            skip(m, "the fleet has no subnet:");
            continue;
        }
        if (!f.subnet->contains(m.address) || (f.ip6 && *f.ip6 == m.address)) {
            skip(m, fmt::format("its address is outside {} or the server's", f.subnet->str()));
            continue;
        }
        if (f.peers.count(m.name) || f.controllers.count(m.name) || m.name == f.server) {
            skip(m, fmt::format("the name {} is taken", m.name));
            continue;
        }
        auto& seen = keys[m.fleet];
        if (seen.empty())
            for (const auto& [n, p] : f.peers)
                if (p.public_key) seen.insert(p.public_key->base64());
        if (m.public_key == f.server_public_key || !seen.insert(m.public_key.base64()).second) {
            skip(m, "its public key is another member's");
            continue;
        }
        auto& taken = planned[m.fleet];
        if (taken.empty()) {
            const plan::FleetPlan fp = plan::plan_fleet(m.fleet, f);
            for (const auto& [n, na] : fp.nodes)
                for (const auto& a : na.addresses) taken.insert(a.addr);
        }
        if (!taken.insert(m.address).second) {
            skip(m, "a member of the file has its address");
            continue;
        }
        auto& names = hosts_names[m.fleet];
        if (names.empty()) {
            for (const auto& [n, p] : f.peers)
                if (!p.dynamic) names.insert(n);
            for (const auto& [n, c] : f.controllers) names.insert(n);
            names.insert(f.server);
        }
        std::optional<std::string> host_name = m.host_name;
        if (host_name && !names.insert(*host_name).second) {
            diags.warning(config::Loc{}, "fleets." + m.fleet,
                          fmt::format("{}: client {} keeps no hosts entry: its host name {} is a member's of the fleet", m.source,
                                      m.address.str(), *host_name));
            host_name.reset();
        }
        model::Member mem;
        mem.public_key = m.public_key;
        mem.suffix = host_bits(*f.subnet, m.address);
        mem.dynamic = true;
        mem.host_name = std::move(host_name);
        f.peers.emplace(m.name, std::move(mem));
    }
}

}  // namespace wgf::inputs
