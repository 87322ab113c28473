#include "plan/foreign_firewall.hpp"

#include <set>
#include <string_view>

#include <fmt/format.h>

#include "plan/sysctls.hpp"

namespace wgf::plan {
namespace {

std::string joined(const std::vector<std::string>& v, std::string_view sep = ", ") {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

struct Needs {
    std::vector<std::string> interfaces;  // the node's WireGuard interfaces
    std::set<uint16_t> ports;             // their listen ports
    bool forwards = false;                // traffic passes through the node
};

Needs needs_of(const model::HostState& desired) {
    Needs n;
    for (const auto& [name, w] : desired.interfaces) {
        n.interfaces.push_back(name);
        if (w.listen_port) n.ports.insert(*w.listen_port);
    }
    for (const char* key : {kIpv6Forwarding, "net/ipv4/ip_forward"}) {
        auto it = desired.sysctls.find(key);
        n.forwards |= it != desired.sysctls.end() && it->second == "1";
    }
    for (const auto& [id, r] : desired.firewall) n.forwards |= r.kind != model::FwKind::accept_udp;
    return n;
}

// iptables-nft keeps its chains in nftables tables "ip filter" / "ip6 filter" with upper-case
// names; its own command is the natural way to add to them.
bool iptables_nft(const model::ForeignDrop& d) {
    return (d.family == "ip" || d.family == "ip6") && d.table == "filter" && (d.chain == "INPUT" || d.chain == "FORWARD");
}

std::string rules_for(const model::ForeignDrop& d, const Needs& n) {
    std::vector<std::string> rules;
    const bool iptables = iptables_nft(d);
    const std::string cmd = d.family == "ip6" ? "ip6tables" : "iptables";
    if (d.hook == "input")
        for (uint16_t p : n.ports)
            rules.push_back(iptables ? fmt::format("{} -I {} -p udp --dport {} -j ACCEPT", cmd, d.chain, p)
                                     : fmt::format("nft insert rule {} {} {} udp dport {} accept", d.family, d.table, d.chain, p));
    for (const auto& ifname : n.interfaces) {
        rules.push_back(iptables ? fmt::format("{} -I {} -i {} -j ACCEPT", cmd, d.chain, ifname)
                                 : fmt::format("nft insert rule {} {} {} iifname \"{}\" accept", d.family, d.table, d.chain, ifname));
        if (d.hook == "forward")
            rules.push_back(iptables ? fmt::format("{} -I {} -o {} -j ACCEPT", cmd, d.chain, ifname)
                                     : fmt::format("nft insert rule {} {} {} oifname \"{}\" accept", d.family, d.table, d.chain, ifname));
    }
    return joined(rules, "; ");
}

}  // namespace

std::vector<std::string> foreign_firewall_warnings(const model::HostState& desired, const LiveFacts& facts) {
    const Needs n = needs_of(desired);
    std::vector<std::string> out;
    if (n.interfaces.empty()) return out;
    std::vector<std::string> ports;
    for (uint16_t p : n.ports) ports.push_back(std::to_string(p));
    const std::string ports_text = ports.empty() ? "" : " on UDP port " + joined(ports);
    for (const auto& d : facts.foreign_drops) {
        if (d.hook == "forward" && !n.forwards) continue;
        const std::string what = d.hook == "input"
                                     ? fmt::format("the WireGuard handshakes{} and the fleet's traffic to this node over {}", ports_text,
                                                   joined(n.interfaces))
                                     : fmt::format("the fleet traffic this node forwards into or out of {}", joined(n.interfaces));
        out.push_back(
            fmt::format("table {} {}, chain {} (hook {}, priority {}) drops by policy: {} end there unless one of its rules "
                        "accepts them; wg-fleet does not change another table. To let them pass: {}",
                        d.family, d.table, d.chain, d.hook, d.priority, what, rules_for(d, n)));
    }
    if (!facts.legacy_tables.empty()) {
        std::vector<std::string> rules;
        for (uint16_t p : n.ports) rules.push_back(fmt::format("iptables-legacy -I INPUT -p udp --dport {} -j ACCEPT", p));
        for (const auto& ifname : n.interfaces) {
            rules.push_back(fmt::format("iptables-legacy -I INPUT -i {} -j ACCEPT", ifname));
            if (n.forwards) {
                rules.push_back(fmt::format("iptables-legacy -I FORWARD -i {} -j ACCEPT", ifname));
                rules.push_back(fmt::format("iptables-legacy -I FORWARD -o {} -j ACCEPT", ifname));
            }
        }
        const std::string list = joined(rules, "; ");
        out.push_back(
            fmt::format("iptables-legacy tables are loaded ({}; /proc/net/ip_tables_names, ip6_tables_names): nftables "
                        "cannot show their rules, so wg-fleet cannot tell whether they drop fleet traffic. If their INPUT{} "
                        "chain drops by policy, add (and the same with ip6tables-legacy): {}",
                        joined(facts.legacy_tables), n.forwards ? " or FORWARD" : "", list));
    }
    return out;
}

}  // namespace wgf::plan
