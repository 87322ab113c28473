#include "inputs/enrolled.hpp"

#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include <set>
#include <unordered_set>

#include "plan/address_plan.hpp"
#include "store/headscale_mapping.hpp"
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

// The host bits a subnet leaves (the low 64 at most).
uint64_t subnet_mask(const model::Prefix& subnet) {
    const unsigned host = subnet.addr.bits() - subnet.len;
    return host >= 64 ? UINT64_MAX : (uint64_t{1} << host) - 1;
}

// The subnet address with host bits `s` (the low 64 bits at most, as the address plan does).
model::IpAddr with_host_bits(const model::Prefix& subnet, uint64_t s) {
    model::IpAddr a = subnet.addr;
    for (int i = 0; i < 8; ++i) a.bytes[15 - i] |= static_cast<uint8_t>(s >> (8 * i));
    return a;
}

// A user other than root checking the file on a node: state_dir is root's (0700). The sources
// matter to the commands that change the node, which run as root and get the error.
bool unreadable_here(const std::string& path, const char* what, config::Diagnostics& diags) {
    if (geteuid() == 0 || access(path.c_str(), R_OK) == 0 || errno != EACCES) return false;
    diags.warning(config::Loc{}, "state_dir", fmt::format("{}: not readable by this user: {} left out", path, what));
    return true;
}

}  // namespace

std::string enrolled_name(const std::string& fleet, const model::Prefix& subnet, const model::IpAddr& address) {
    return fmt::format("{}.{:x}", fleet, host_bits(subnet, address));
}

std::vector<DynamicMember> read_enrolled(const model::Config& cfg, config::Diagnostics& diags) {
    const std::string path = serve::store_path(cfg.state_dir);
    if (unreadable_here(path, "enrolled clients", diags)) return {};
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

std::vector<DynamicMember> read_headscale_members(const model::Config& cfg, config::Diagnostics& diags) {
    std::vector<DynamicMember> out;
    for (const auto& [fname, f] : cfg.fleets) {
        if (!f.headscale) continue;
        const std::string path = serve::headscale::mapping_path(cfg.state_dir, fname);
        if (unreadable_here(path, "Headscale nodes", diags)) continue;
        std::optional<serve::headscale::Mapping> m;
        try {
            m = serve::headscale::read_mapping(path);
        } catch (const serve::StoreError& e) {
            diags.error(config::Loc{}, "fleets." + fname + ".headscale", fmt::format("cannot read the Headscale nodes: {}", e.what()));
            continue;
        }
        if (!m) continue;
        // A node's hosts entry is its name, as a file member's is (when it is a host name).
        for (const auto& [id, e] : m->nodes)
            out.push_back(DynamicMember{.fleet = fname,
                                        .name = e.name,
                                        .public_key = e.public_key,
                                        .address = e.address,
                                        .host_name = serve::valid_host_name(e.name) ? std::optional(e.name) : std::nullopt,
                                        .source = path});
    }
    return out;
}

std::vector<DynamicMember> read_dynamic_members(const model::Config& cfg, config::Diagnostics& diags) {
    std::vector<DynamicMember> out = read_enrolled(cfg, diags);
    std::vector<DynamicMember> hs = read_headscale_members(cfg, diags);
    out.insert(out.end(), std::make_move_iterator(hs.begin()), std::make_move_iterator(hs.end()));
    return out;
}

model::Fleet without_dynamic_members(const model::Fleet& f) {
    model::Fleet out = f;
    std::erase_if(out.peers, [](const auto& p) { return p.second.dynamic; });
    return out;
}

model::Config without_dynamic_members(const model::Config& cfg) {
    model::Config out = cfg;
    for (auto& [name, f] : out.fleets) std::erase_if(f.peers, [](const auto& p) { return p.second.dynamic; });
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
        // A Headscale pool may lie in the fleet's ipv4 instead: the node is pinned there and its
        // subnet address takes the IPv4 address as host bits, above anything handed out in order.
        const bool in_ipv4 = !f.subnet->contains(m.address) && m.address.is_v4() && f.ipv4 && f.ipv4->contains(m.address);
        if ((!f.subnet->contains(m.address) && !in_ipv4) || (f.ip6 && *f.ip6 == m.address)) {
            skip(m, fmt::format("its address is outside {}{} or the server's", f.subnet->str(), f.ipv4 ? " and " + f.ipv4->str() : ""));
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
        const uint64_t suffix = in_ipv4 ? ((uint64_t{1} << 32) | m.address.v4_value()) & subnet_mask(*f.subnet)
                                        : host_bits(*f.subnet, m.address);
        const model::IpAddr in_subnet = in_ipv4 ? with_host_bits(*f.subnet, suffix) : m.address;
        if (taken.count(m.address) || taken.count(in_subnet)) {
            skip(m, "another member has its address");
            continue;
        }
        taken.insert(m.address);
        taken.insert(in_subnet);
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
        mem.suffix = suffix;
        if (in_ipv4) mem.ipv4 = m.address;
        mem.dynamic = true;
        mem.host_name = std::move(host_name);
        f.peers.emplace(m.name, std::move(mem));
    }
}

}  // namespace wgf::inputs
