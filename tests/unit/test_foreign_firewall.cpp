// The warnings about someone else's firewall: which dropping chains fleet traffic reaches, and
// the rules each warning tells the operator to add.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "plan/foreign_firewall.hpp"

using wgf::model::ForeignDrop;
using wgf::model::FwKind;
using wgf::model::FwRule;
using wgf::model::HostState;
using wgf::plan::foreign_firewall_warnings;
using wgf::plan::LiveFacts;

namespace {

HostState node(bool forwards) {
    HostState hs;
    wgf::model::WgInterface w;
    w.name = "wg-acme";
    w.listen_port = 51820;
    hs.interfaces.emplace(w.name, w);
    if (forwards) hs.sysctls["net/ipv4/ip_forward"] = "1";
    return hs;
}

const ForeignDrop kDockerForward{.family = "ip", .table = "filter", .chain = "FORWARD", .hook = "forward", .priority = 0};
const ForeignDrop kFirewalldInput{.family = "inet", .table = "firewalld", .chain = "filter_INPUT", .hook = "input", .priority = 10};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("foreign firewall: an input chain that drops gets the port and interface rules to add", "[foreign_firewall]") {
    LiveFacts facts;
    facts.foreign_drops = {kFirewalldInput};
    auto w = foreign_firewall_warnings(node(false), facts);
    REQUIRE(w.size() == 1);
    CHECK(has(w[0], "table inet firewalld, chain filter_INPUT (hook input, priority 10) drops by policy"));
    CHECK(has(w[0], "UDP port 51820"));
    CHECK(has(w[0], "nft insert rule inet firewalld filter_INPUT udp dport 51820 accept"));
    CHECK(has(w[0], "nft insert rule inet firewalld filter_INPUT iifname \"wg-acme\" accept"));
}

TEST_CASE("foreign firewall: a forward chain counts only on a node that forwards, in iptables' own words", "[foreign_firewall]") {
    LiveFacts facts;
    facts.foreign_drops = {kDockerForward};
    CHECK(foreign_firewall_warnings(node(false), facts).empty());
    auto w = foreign_firewall_warnings(node(true), facts);
    REQUIRE(w.size() == 1);
    CHECK(has(w[0], "iptables -I FORWARD -i wg-acme -j ACCEPT"));
    CHECK(has(w[0], "iptables -I FORWARD -o wg-acme -j ACCEPT"));
    CHECK_FALSE(has(w[0], "--dport"));
    // A forward (DNAT) rule of the node's own is forwarding too.
    HostState dnat = node(false);
    dnat.firewall["f1"] = FwRule{.id = "f1",
                                 .kind = FwKind::dnat,
                                 .proto = wgf::model::Proto::tcp,
                                 .port = 80,
                                 .iif = {},
                                 .oif = {},
                                 .to = wgf::model::IpAddr::parse("10.0.0.2"),
                                 .to_port = 80};
    CHECK(foreign_firewall_warnings(dnat, facts).size() == 1);
}

TEST_CASE("foreign firewall: iptables-legacy tables get one warning, a node without WireGuard none", "[foreign_firewall]") {
    LiveFacts facts;
    facts.legacy_tables = {"ip filter", "ip6 filter"};
    auto w = foreign_firewall_warnings(node(true), facts);
    REQUIRE(w.size() == 1);
    CHECK(has(w[0], "iptables-legacy tables are loaded (ip filter, ip6 filter"));
    CHECK(has(w[0], "iptables-legacy -I INPUT -p udp --dport 51820 -j ACCEPT"));
    CHECK(has(w[0], "iptables-legacy -I FORWARD -o wg-acme -j ACCEPT"));
    facts.foreign_drops = {kDockerForward, kFirewalldInput};
    CHECK(foreign_firewall_warnings(HostState{}, facts).empty());
}

TEST_CASE("foreign firewall: with foreign_accept the warned rules are desired, marked, and iptables-legacy keeps its warning",
          "[foreign_firewall]") {
    using wgf::model::ForeignRule;
    LiveFacts facts;
    facts.foreign_drops = {kDockerForward, kFirewalldInput};
    facts.legacy_tables = {"ip filter"};
    const auto rules = wgf::plan::foreign_accept_rules(node(true), facts);
    std::vector<std::string> keys;
    for (const auto& [k, r] : rules) {
        CHECK(k == r.key());
        CHECK(r.as_built);
        keys.push_back(k);
    }
    CHECK(keys == std::vector<std::string>{"inet firewalld filter_INPUT iif-wg-acme", "inet firewalld filter_INPUT udp-dport-51820",
                                           "ip filter FORWARD iif-wg-acme", "ip filter FORWARD oif-wg-acme"});
    // Each is the rule the warning names (without the opt-in).
    const auto warned = foreign_firewall_warnings(node(true), facts);
    REQUIRE(warned.size() == 3);
    CHECK(has(warned[1], "nft insert rule inet firewalld filter_INPUT " + wgf::plan::describe_foreign_match("udp-dport-51820")));
    CHECK(has(warned[1], "nft insert rule inet firewalld filter_INPUT " + wgf::plan::describe_foreign_match("iif-wg-acme")));
    // With the opt-in only the iptables-legacy warning stays, and it says the opt-in cannot act there.
    const auto accepting = foreign_firewall_warnings(node(true), facts, true);
    REQUIRE(accepting.size() == 1);
    CHECK(has(accepting[0], "iptables-legacy tables are loaded"));
    CHECK(has(accepting[0], "firewall: foreign_accept acts on nftables chains only: it cannot add them there"));
    // A node that does not forward needs nothing in a forward chain.
    CHECK(wgf::plan::foreign_accept_rules(node(false), facts).size() == 2);
    CHECK(wgf::plan::foreign_accept_rules(HostState{}, facts).empty());
}
