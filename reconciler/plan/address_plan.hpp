// The address plan: which addresses every node of every fleet holds. Pure and deterministic.
// Clan-style fleets follow clan-core's ULA plan exactly (reference/clan-address-plan.md), computed
// as 128-bit values; subnet-style fleets place clients in their explicit subnet. Collisions are
// not resolved here: validate() reports them so the YAML can pin `id:` / `suffix:`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/spec.hpp"

namespace wgf::plan {

using model::IpAddr;
using model::Prefix;
using model::Role;

// clan-core's derivations from SHA-256 of a name.
Prefix clan_fleet_prefix(std::string_view fleet);          // fd + H(fleet)[0..2] + 00 :: /40
uint16_t clan_controller_id(std::string_view controller);  // H(C)[0..1]
uint64_t clan_suffix(std::string_view peer);               // H(P)[0..7]

Prefix controller_net(const Prefix& fleet40, uint16_t id);  // /56
// The bits of a 64-bit suffix that fall in the host part of a subnet of length `len`.
uint64_t subnet_host_mask(uint8_t len);
IpAddr with_suffix(const IpAddr& net, uint64_t suffix);  // bytes 0..7 of net || suffix

struct NodeAddrs {
    Role role = Role::peer;
    std::vector<Prefix> addresses;  // interface addresses with their prefix length, plan order
    bool operator==(const NodeAddrs&) const = default;
};

struct FleetPlan {
    Prefix prefix;                             // clan /40, or the subnet
    std::map<std::string, Prefix> nets;        // clan: each controller's /56
    std::map<std::string, uint16_t> ids;       // clan: each controller's effective id
    std::map<std::string, uint64_t> suffixes;  // each peer's effective suffix
    std::map<std::string, IpAddr> ipv4;        // members with an IPv4 address
    std::map<std::string, NodeAddrs> nodes;
    bool ipv4_exhausted = false;
    bool operator==(const FleetPlan&) const = default;
};

struct AddressPlan {
    std::map<std::string, FleetPlan> fleets;
    bool operator==(const AddressPlan&) const = default;
};

// The entry of `key` in map `m`, or nullptr, found from `it` on (a position in m) and advancing
// it: keys asked in ascending order find their entries in one walk of the map instead of a
// search each, for a loop over one name-ordered map that needs the entries of another.
template <class Map, class It>
auto find_in_step(Map& m, It& it, const typename Map::key_type& key) -> decltype(&it->second) {
    while (it != m.end() && it->first < key) ++it;
    return it != m.end() && it->first == key ? &it->second : nullptr;
}

AddressPlan plan_addresses(const model::Config& cfg);
FleetPlan plan_fleet(const std::string& name, const model::Fleet& fleet);

// The address other nodes use to reach `node` in a fleet (hosts file, forwards, HTTP routes):
// a controller's ::1, a peer's address in its designated controller's subnet, the server's ip6.
std::optional<IpAddr> primary_address(const model::Fleet& fleet, const FleetPlan& fp, const std::string& node);
// The same, given the node's entry in fp.nodes and its entry in fleet.peers (nullptr when it has
// none): no lookup when walking fp.nodes and fleet.peers in step.
std::optional<IpAddr> primary_address(const model::Fleet& fleet, const FleetPlan& fp, const std::string& node, const NodeAddrs& addrs,
                                      const model::Member* peer);
// The designated controller of a peer: its controller:, or the only controller.
std::optional<std::string> designated_controller(const model::Fleet& fleet, const model::Member& peer);
// The controller a peer's IPv4 address and routes are reached through in a hub: its designated
// one, else the first (validate() rejects a peer without controller: among several, and one
// naming an unknown controller; rendering still needs every node to pick the same one).
// Empty when the fleet has no controller.
const std::string& home_controller(const model::Fleet& fleet, const model::Member& peer);

}  // namespace wgf::plan
