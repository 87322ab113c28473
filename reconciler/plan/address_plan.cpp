#include "plan/address_plan.hpp"

#include <sodium.h>

#include <stdexcept>
#include <unordered_set>

namespace wgf::plan {
namespace {

std::array<uint8_t, 32> sha256(std::string_view s) {
    static const bool ready = sodium_init() >= 0;
    if (!ready) throw std::runtime_error("libsodium failed to initialise");
    std::array<uint8_t, 32> h;
    crypto_hash_sha256(h.data(), reinterpret_cast<const unsigned char*>(s.data()), s.size());
    return h;
}

}  // namespace

uint64_t subnet_host_mask(uint8_t len) { return len >= 128 ? 0 : len <= 64 ? UINT64_MAX : (UINT64_MAX >> (len - 64)); }

Prefix clan_fleet_prefix(std::string_view fleet) {
    auto h = sha256(fleet);
    std::array<uint8_t, 16> b{};
    b[0] = 0xfd;
    b[1] = h[0];
    b[2] = h[1];
    b[3] = h[2];
    b[4] = 0x00;  // clan zeroes the fourth hash byte: only 24 bits of the hash are used
    return Prefix{IpAddr::v6(b), 40};
}

uint16_t clan_controller_id(std::string_view controller) {
    auto h = sha256(controller);
    return static_cast<uint16_t>((h[0] << 8) | h[1]);
}

uint64_t clan_suffix(std::string_view peer) {
    auto h = sha256(peer);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | h[i];
    return v;
}

Prefix controller_net(const Prefix& fleet40, uint16_t id) {
    Prefix p = fleet40.masked();
    p.addr.bytes[5] = static_cast<uint8_t>(id >> 8);
    p.addr.bytes[6] = static_cast<uint8_t>(id);
    p.addr.bytes[7] = 0;
    p.len = 56;
    return p;
}

IpAddr with_suffix(const IpAddr& net, uint64_t suffix) {
    IpAddr a = net;
    for (int i = 0; i < 8; ++i) a.bytes[15 - i] = static_cast<uint8_t>(suffix >> (8 * i));
    return a;
}

namespace {

// designated_controller() without a copy of the name, for the loops over every peer.
const std::string* designated(const model::Fleet& fleet, const model::Member& peer) {
    if (peer.controller) return &*peer.controller;
    if (fleet.controllers.size() == 1) return &fleet.controllers.begin()->first;
    return nullptr;
}

}  // namespace

std::optional<std::string> designated_controller(const model::Fleet& fleet, const model::Member& peer) {
    const std::string* d = designated(fleet, peer);
    return d ? std::optional(*d) : std::nullopt;
}

const std::string& home_controller(const model::Fleet& fleet, const model::Member& peer) {
    static const std::string none;
    const std::string* d = designated(fleet, peer);
    if (d && fleet.controllers.count(*d)) return *d;
    return fleet.controllers.empty() ? none : fleet.controllers.begin()->first;
}

FleetPlan plan_fleet(const std::string& name, const model::Fleet& f) {
    FleetPlan fp;
    // Each peer's name hash (in f.peers order): its suffix unless pinned, and its IPv4 slot.
    std::vector<uint64_t> peer_hash;
    peer_hash.reserve(f.peers.size());
    for (const auto& [p, m] : f.peers) peer_hash.push_back(clan_suffix(p));
    if (f.style == model::FleetStyle::clan) {
        fp.prefix = clan_fleet_prefix(name);
        for (const auto& [c, m] : f.controllers) {
            uint16_t id = m.id ? *m.id : clan_controller_id(c);
            fp.ids[c] = id;
            fp.nets[c] = controller_net(fp.prefix, id);
            Prefix addr{with_suffix(fp.nets[c].addr, 1), 40};
            fp.nodes[c] = NodeAddrs{Role::controller, {addr}};
        }
        // Peers come in name order, so each goes right after the one before (past any controller
        // that sorts between them): the hints make building the maps linear.
        auto node_hint = fp.nodes.begin();
        auto hash = peer_hash.begin();
        for (const auto& [p, m] : f.peers) {
            uint64_t s = m.suffix ? *m.suffix : *hash;
            ++hash;
            fp.suffixes.emplace_hint(fp.suffixes.end(), p, s);
            NodeAddrs na{Role::peer, {}};
            na.addresses.reserve(fp.nets.size() + 1);  // and an IPv4 address, if the fleet has ipv4:
            for (const auto& [c, net] : fp.nets) na.addresses.push_back(Prefix{with_suffix(net.addr, s), 56});
            node_hint = std::next(fp.nodes.insert_or_assign(node_hint, p, std::move(na)));
        }
    } else if (f.subnet) {
        fp.prefix = *f.subnet;
        if (f.ip6) fp.nodes[f.server] = NodeAddrs{Role::server, {Prefix{*f.ip6, f.subnet->len}}};
        uint64_t mask = subnet_host_mask(f.subnet->len);
        auto node_hint = fp.nodes.begin();
        auto hash = peer_hash.begin();
        for (const auto& [p, m] : f.peers) {
            uint64_t s = (m.suffix ? *m.suffix : *hash) & mask;
            ++hash;
            fp.suffixes.emplace_hint(fp.suffixes.end(), p, s);
            IpAddr base = f.subnet->addr;
            // Host bits of the subnet beyond the low 64 are not used: a subnet is /64 or longer.
            for (int i = 0; i < 8; ++i) base.bytes[15 - i] |= static_cast<uint8_t>(s >> (8 * i));
            node_hint = std::next(fp.nodes.insert_or_assign(node_hint, p, NodeAddrs{Role::peer, {Prefix{base, f.subnet->len}}}));
        }
    }
    if (f.ipv4) {
        // Pinned addresses first, then every other member in (controllers, server, peers) name order,
        // each at a hash-chosen slot probing upwards: stable unless two names collide.
        const Prefix pool = *f.ipv4;
        uint32_t base = pool.addr.v4_value();
        uint64_t size = pool.len >= 31 ? 0 : (uint64_t{1} << (32 - pool.len)) - 2;  // minus network and broadcast
        struct Candidate {
            const std::string* name;
            const model::Member* m;  // none for a subnet fleet's server
            uint64_t hash;
        };
        std::vector<Candidate> members;
        members.reserve(f.controllers.size() + 1 + f.peers.size());
        for (const auto& [n, m] : f.controllers) members.push_back({.name = &n, .m = &m, .hash = clan_suffix(n)});
        if (f.style == model::FleetStyle::subnet) members.push_back({.name = &f.server, .m = nullptr, .hash = clan_suffix(f.server)});
        auto hash = peer_hash.begin();
        for (const auto& [n, m] : f.peers) members.push_back({.name = &n, .m = &m, .hash = *hash++});
        std::unordered_set<uint32_t> used;
        used.reserve(members.size());
        for (const auto& [n, m, h] : members)
            if (m && m->ipv4) {
                fp.ipv4[*n] = *m->ipv4;
                used.insert(m->ipv4->v4_value());
            }
        // Peers are assigned in name order, so each goes right after the one before.
        auto hint = fp.ipv4.begin();
        for (const auto& [n, m, h] : members) {
            if (m && m->ipv4) continue;
            if (used.size() >= size) {
                fp.ipv4_exhausted = true;
                break;
            }
            uint64_t slot = h % size;
            while (used.count(static_cast<uint32_t>(base + 1 + slot))) slot = (slot + 1) % size;
            uint32_t v = static_cast<uint32_t>(base + 1 + slot);
            used.insert(v);
            hint = std::next(fp.ipv4.insert_or_assign(hint, *n, IpAddr::v4(v)));
        }
        auto node = fp.nodes.begin();
        for (const auto& [n, a] : fp.ipv4)
            if (NodeAddrs* na = find_in_step(fp.nodes, node, n)) na->addresses.push_back(Prefix{a, pool.len});
    }
    return fp;
}

AddressPlan plan_addresses(const model::Config& cfg) {
    AddressPlan plan;
    for (const auto& [name, f] : cfg.fleets) plan.fleets.emplace(name, plan_fleet(name, f));
    return plan;
}

std::optional<IpAddr> primary_address(const model::Fleet& f, const FleetPlan& fp, const std::string& node) {
    auto it = fp.nodes.find(node);
    if (it == fp.nodes.end()) return std::nullopt;
    auto pm = f.peers.find(node);
    return primary_address(f, fp, node, it->second, pm == f.peers.end() ? nullptr : &pm->second);
}

std::optional<IpAddr> primary_address(const model::Fleet& f, const FleetPlan& fp, const std::string& node, const NodeAddrs& addrs,
                                      const model::Member* peer) {
    if (addrs.addresses.empty()) return std::nullopt;
    if (addrs.role != Role::peer || f.style == model::FleetStyle::subnet) return addrs.addresses.front().addr;
    if (!peer) return std::nullopt;  // the plan makes a peer only of a member of f.peers
    const std::string* dc = designated(f, *peer);
    if (!dc) return std::nullopt;
    auto net = fp.nets.find(*dc);
    if (net == fp.nets.end()) return std::nullopt;
    // The plan holds the peer's address in every controller's /56: the one in its controller's.
    for (const auto& a : addrs.addresses)
        if (net->second.contains(a.addr)) return a.addr;
    return with_suffix(net->second.addr, fp.suffixes.at(node));
}

}  // namespace wgf::plan
