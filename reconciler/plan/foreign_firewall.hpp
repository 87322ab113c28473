// Someone else's firewall: another nftables table whose input or forward chain drops by policy
// (Docker, firewalld, a hand-written ruleset, iptables-nft), or iptables-legacy tables, which
// nftables cannot show. wg-fleet never changes them; `plan`, `apply` and `watch` say what would
// be dropped there and the rule that lets it pass. Pure.
#pragma once

#include <string>
#include <vector>

#include "model/host_state.hpp"
#include "plan/diff.hpp"

namespace wgf::plan {

// One warning per dropping chain that fleet traffic of `desired` reaches: an input chain when the
// node has a WireGuard interface (the handshakes on its listen ports, the fleet's traffic to the
// node), a forward chain when the node forwards (its forwarding sysctls, forwards, masquerade);
// one for loaded iptables-legacy tables. Each names the chain and the rules to add.
std::vector<std::string> foreign_firewall_warnings(const model::HostState& desired, const LiveFacts& facts);

}  // namespace wgf::plan
