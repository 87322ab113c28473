// Someone else's firewall: another nftables table whose input or forward chain drops by policy
// (Docker, firewalld, a hand-written ruleset, iptables-nft), or iptables-legacy tables, which
// nftables cannot show. By default wg-fleet never changes them; `plan`, `apply` and `watch` say
// what would be dropped there and the rule that lets it pass. With `firewall: foreign_accept`
// those rules are desired (model::ForeignRule) in the nftables chains; iptables-legacy tables
// keep their warning. Pure.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/host_state.hpp"
#include "plan/diff.hpp"

namespace wgf::plan {

// One warning per dropping chain that fleet traffic of `desired` reaches: an input chain when the
// node has a WireGuard interface (the handshakes on its listen ports, the fleet's traffic to the
// node), a forward chain when the node forwards (its forwarding sysctls, forwards, masquerade);
// one for loaded iptables-legacy tables. Each names the chain and the rules to add.
// With `accepting` (firewall: foreign_accept) the nftables chains get no warning: their rules are
// desired (foreign_accept_rules) and planned like every other change.
std::vector<std::string> foreign_firewall_warnings(const model::HostState& desired, const LiveFacts& facts, bool accepting = false);

// The rules the warnings name for the nftables chains, by ForeignRule::key(): each inserted at the
// head of its chain, ours by its comment.
std::map<std::string, model::ForeignRule> foreign_accept_rules(const model::HostState& desired, const LiveFacts& facts);

// "udp dport 51820 accept" for the rule's id; the id itself when it is not one wg-fleet builds.
std::string describe_foreign_match(const std::string& id);

}  // namespace wgf::plan
