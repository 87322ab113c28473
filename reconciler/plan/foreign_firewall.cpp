#include "plan/foreign_firewall.hpp"

#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "plan/sysctls.hpp"

namespace wgf::plan {
namespace {

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

// The rules that let the node's fleet traffic through chain `d`: with `iptables` (the command),
// in its syntax, else as nft rules.
std::vector<std::string> rules_for(const model::ForeignDrop& d, const Needs& n, const std::string& iptables) {
    std::vector<std::string> rules;
    if (d.hook == "input")
        for (uint16_t p : n.ports)
            rules.push_back(!iptables.empty() ? fmt::format("{} -I {} -p udp --dport {} -j ACCEPT", iptables, d.chain, p)
                                              : fmt::format("nft insert rule {} {} {} udp dport {} accept", d.family, d.table, d.chain, p));
    for (const auto& ifname : n.interfaces) {
        rules.push_back(!iptables.empty()
                            ? fmt::format("{} -I {} -i {} -j ACCEPT", iptables, d.chain, ifname)
                            : fmt::format("nft insert rule {} {} {} iifname \"{}\" accept", d.family, d.table, d.chain, ifname));
        if (d.hook == "forward")
            rules.push_back(!iptables.empty()
                                ? fmt::format("{} -I {} -o {} -j ACCEPT", iptables, d.chain, ifname)
                                : fmt::format("nft insert rule {} {} {} oifname \"{}\" accept", d.family, d.table, d.chain, ifname));
    }
    return rules;
}

// The ids of the rules chain `d` needs (ForeignRule::id), in the order of rules_for.
std::vector<std::string> ids_for(const model::ForeignDrop& d, const Needs& n) {
    std::vector<std::string> ids;
    if (d.hook == "input")
        for (uint16_t p : n.ports) ids.push_back(fmt::format("udp-dport-{}", p));
    for (const auto& ifname : n.interfaces) {
        ids.push_back("iif-" + ifname);
        if (d.hook == "forward") ids.push_back("oif-" + ifname);
    }
    return ids;
}

}  // namespace

std::map<std::string, model::ForeignRule> foreign_accept_rules(const model::HostState& desired, const LiveFacts& facts) {
    const Needs n = needs_of(desired);
    std::map<std::string, model::ForeignRule> out;
    if (n.interfaces.empty()) return out;
    for (const auto& d : facts.foreign_drops) {
        if (d.hook == "forward" && !n.forwards) continue;
        for (auto& id : ids_for(d, n)) {
            model::ForeignRule r{.family = d.family, .table = d.table, .chain = d.chain, .id = std::move(id), .as_built = true};
            out.emplace(r.key(), std::move(r));
        }
    }
    return out;
}

std::string describe_foreign_match(const std::string& id) {
    if (id.starts_with("udp-dport-")) return fmt::format("udp dport {} accept", id.substr(10));
    if (id.starts_with("iif-")) return fmt::format("iifname \"{}\" accept", id.substr(4));
    if (id.starts_with("oif-")) return fmt::format("oifname \"{}\" accept", id.substr(4));
    return id;
}

std::vector<std::string> foreign_firewall_warnings(const model::HostState& desired, const LiveFacts& facts, bool accepting) {
    const Needs n = needs_of(desired);
    std::vector<std::string> out;
    if (n.interfaces.empty()) return out;
    const std::string ports_text = n.ports.empty() ? "" : fmt::format(" on UDP port {}", fmt::join(n.ports, ", "));
    for (const auto& d : facts.foreign_drops) {
        if ((d.hook == "forward" && !n.forwards) || accepting) continue;
        const std::string what = d.hook == "input"
                                     ? fmt::format("the WireGuard handshakes{} and the fleet's traffic to this node over {}", ports_text,
                                                   fmt::join(n.interfaces, ", "))
                                     : fmt::format("the fleet traffic this node forwards into or out of {}", fmt::join(n.interfaces, ", "));
        out.push_back(
            fmt::format("table {} {}, chain {} (hook {}, priority {}) drops by policy: {} end there unless one of its rules "
                        "accepts them; wg-fleet does not change another table. To let them pass: {}",
                        d.family, d.table, d.chain, d.hook, d.priority, what,
                        fmt::join(rules_for(d, n, iptables_nft(d) ? (d.family == "ip6" ? "ip6tables" : "iptables") : ""), "; ")));
    }
    if (!facts.legacy_tables.empty()) {
        // The rules as for iptables-nft's INPUT and FORWARD chains, with iptables-legacy's command.
        const model::ForeignDrop input{.family = "ip", .table = "filter", .chain = "INPUT", .hook = "input", .priority = 0};
        const model::ForeignDrop forward{.family = "ip", .table = "filter", .chain = "FORWARD", .hook = "forward", .priority = 0};
        std::vector<std::string> rules = rules_for(input, n, "iptables-legacy");
        if (n.forwards)
            for (auto& r : rules_for(forward, n, "iptables-legacy")) rules.push_back(std::move(r));
        out.push_back(
            fmt::format("iptables-legacy tables are loaded ({}; /proc/net/ip_tables_names, ip6_tables_names): nftables "
                        "cannot show their rules, so wg-fleet cannot tell whether they drop fleet traffic. If their INPUT{} "
                        "chain drops by policy, add (and the same with ip6tables-legacy): {}{}",
                        fmt::join(facts.legacy_tables, ", "), n.forwards ? " or FORWARD" : "", fmt::join(rules, "; "),
                        accepting ? " (firewall: foreign_accept acts on nftables chains only: it cannot add them there)" : ""));
    }
    return out;
}

}  // namespace wgf::plan
