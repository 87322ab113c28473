// Exit nodes (exit_node:): validation of the names and the shapes it refuses, and the render of
// both sides: the peer's allowed IPs, mark, table and rules; the controller's accept and
// masquerade rules for exactly the peer's addresses (taken from the address plan) and its
// forwarding.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "plan/ops.hpp"
#include "plan/render.hpp"

using namespace wgf;
using model::FwKind;
using model::HostState;

namespace {

constexpr const char* kGw = "cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=";
constexpr const char* kGw2 = "M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=";

const std::string kFleet = fmt::format(R"(fleets:
  road:
    ipv4: 10.70.0.0/24
    exit_node: gw
    controllers:
      gw: {{ endpoint: 198.51.100.1, public_key: {} }}
    peers:
      laptop: {{ public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }}
      phone: {{ public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY=, exit_node: none }}
      desk: {{ public_key: fwPl3x5N338IdrP7PXDTlSMQAK32JIOnNuA/fToAQ3c=, exit_node: null }}
)",
                                       kGw);

const model::WgPeer& peer_of(const model::WgInterface& w, const char* b64) {
    auto k = model::Key::from_base64(b64);
    REQUIRE(k);
    auto it = w.peers.find(*k);
    REQUIRE(it != w.peers.end());
    return it->second;
}

bool has(const model::PrefixSet& s, const char* p) {
    return std::any_of(s.begin(), s.end(), [&](const model::Prefix& x) { return x.str() == p; });
}

}  // namespace

TEST_CASE("exit node, peer side: 0/0 and ::/0 on the exit node's entry, routed in table 30567 by wg-quick's rules", "[exit][render]") {
    auto r = test::load_valid(kFleet);
    const HostState hs = plan::render_host(*r.fw, "laptop").state;
    const auto& w = hs.interfaces.at("road");
    CHECK(w.fwmark == 0x7767u);
    const auto& gw = peer_of(w, kGw);
    CHECK(has(gw.allowed_ips, "0.0.0.0/0"));
    CHECK(has(gw.allowed_ips, "::/0"));
    // The default routes go to the exit table only; nothing of 0/0 lands in the main table.
    std::vector<std::string> exit_routes;
    for (const auto& rt : hs.routes) {
        if (rt.table == model::kExitTable) exit_routes.push_back(rt.dst.str() + " dev " + rt.dev);
        else CHECK(rt.dst.len != 0);
    }
    CHECK(exit_routes == std::vector<std::string>{"0.0.0.0/0 dev road", "::/0 dev road"});
    std::vector<std::string> rules;
    for (const auto& pr : hs.rules) rules.push_back(plan::describe_policy_rule(pr));
    CHECK(rules == std::vector<std::string>{
                       "ipv4 rule 30566: lookup main suppress_prefixlength 0", "ipv4 rule 30567: not fwmark 0x7767 lookup 30567",
                       "ipv6 rule 30566: lookup main suppress_prefixlength 0", "ipv6 rule 30567: not fwmark 0x7767 lookup 30567"});
    CHECK(hs.sysctls.at("net/ipv4/conf/all/src_valid_mark") == "1");
}

TEST_CASE("exit node: none and null opt a peer out of the fleet's default", "[exit][render]") {
    auto r = test::load_valid(kFleet);
    for (const char* node : {"phone", "desk"}) {
        INFO(node);
        const HostState hs = plan::render_host(*r.fw, node).state;
        const auto& w = hs.interfaces.at("road");
        CHECK(w.fwmark == 0u);
        CHECK_FALSE(has(peer_of(w, kGw).allowed_ips, "0.0.0.0/0"));
        CHECK_FALSE(has(peer_of(w, kGw).allowed_ips, "::/0"));
        CHECK(hs.rules.empty());
        CHECK_FALSE(hs.sysctls.count("net/ipv4/conf/all/src_valid_mark"));
    }
}

TEST_CASE("exit node without an IPv4 pool: ::/0 only", "[exit][render]") {
    auto r = test::load_valid(fmt::format(R"(fleets:
  road:
    controllers:
      gw: {{ endpoint: 198.51.100.1, public_key: {} }}
    peers:
      laptop: {{ public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, exit_node: gw }}
)",
                                          kGw));
    const HostState hs = plan::render_host(*r.fw, "laptop").state;
    const auto& gw = peer_of(hs.interfaces.at("road"), kGw);
    CHECK_FALSE(has(gw.allowed_ips, "0.0.0.0/0"));
    CHECK(has(gw.allowed_ips, "::/0"));
    CHECK(hs.rules.size() == 2);
    for (const auto& pr : hs.rules) CHECK(pr.family == 6);
}

TEST_CASE("exit node, controller side: accepts and masquerades exactly the exit peers' addresses, out of non-fleet interfaces",
          "[exit][render]") {
    auto r = test::load_valid(kFleet);
    const HostState hs = plan::render_host(*r.fw, "gw").state;
    // The laptop's addresses as the address plan gives them.
    const auto& fp = r.fw->plan.fleets.at("road");
    std::vector<std::string> want{fp.ipv4.at("laptop").str()};
    for (const auto& a : fp.nodes.at("laptop").addresses)
        if (a.addr.is_v6()) want.push_back(a.addr.str());
    std::sort(want.begin(), want.end());
    std::vector<std::string> fwd, masq;
    for (const auto& [id, rule] : hs.firewall) {
        if (rule.kind == FwKind::exit_forward) {
            fwd.push_back(rule.from->str());
            CHECK(rule.iif == "road");
        }
        if (rule.kind == FwKind::exit_masquerade) {
            masq.push_back(rule.from->str());
            CHECK(rule.not_oif == std::vector<std::string>{"road"});
        }
    }
    std::sort(fwd.begin(), fwd.end());
    std::sort(masq.begin(), masq.end());
    CHECK(fwd == want);  // phone and desk opted out: none of theirs
    CHECK(masq == want);
    CHECK(hs.firewall.count("exit-masq-laptop-" + fp.ipv4.at("laptop").str()));
    CHECK(hs.sysctls.at("net/ipv4/ip_forward") == "1");
    CHECK(hs.sysctls.at("net/ipv6/conf/all/forwarding") == "1");
    CHECK(hs.interfaces.at("road").fwmark == 0u);
    CHECK(hs.rules.empty());
}

TEST_CASE("exit_node: a controller of the fleet, with a suggestion, in a hub the peer's own, one per node", "[exit][validate]") {
    auto l = test::check(fmt::format(R"(fleets:
  road:
    exit_node: gx
    controllers:
      gw: {{ endpoint: 198.51.100.1, public_key: {} }}
      gw2: {{ endpoint: 198.51.100.2, public_key: {} }}
    peers:
      a: {{ controller: gw, exit_node: gw2 }}
      b: {{ controller: gw, exit_node: none }}
      c: {{ controller: gw2, exit_node: gw2 }}
  other:
    exit_node: o1
    controllers:
      o1: {{ endpoint: 198.51.100.3 }}
    peers:
      c: {{}}
  sub:
    ip6: fd00:9::1
    subnet: fd00:9::/64
    external_ip: 198.51.100.9
    exit_node: server
)",
                                     kGw, kGw2));
    INFO(l->text());
    auto one = [&](const std::string& path) {
        auto e = l->at(path);
        REQUIRE(e.size() == 1);
        return e[0].message;
    };
    CHECK(one("fleets.road.exit_node") == "'gx' — not a controller of fleet 'road'; controllers: gw, gw2; did you mean 'gw'?");
    CHECK(one("fleets.road.peers.a.exit_node") ==
          "'gw2' — exit node 'gw2' is not the peer's controller 'gw': in a hub a peer's traffic leaves through its own controller; set "
          "controller: gw2 or exit_node: gw");
    CHECK(l->at("fleets.road.peers.b").empty());
    // c's exit node is its controller; it is the second of c's (fleets are checked in name order).
    CHECK(one("fleets.road.peers.c.exit_node") ==
          "'c' already sends all its traffic through an exit node in fleet 'other'; a node has one exit node");
    CHECK(l->at("fleets.other.peers.c").empty());
    CHECK(one("fleets.sub.exit_node") == "'server' — subnet-style fleets have no controllers to be an exit node; remove exit_node:");
}

TEST_CASE("routes: [0.0.0.0/0] gets one error that points to exit_node", "[exit][validate]") {
    auto l = test::check(fmt::format(R"(fleets:
  road:
    controllers:
      gw: {{ endpoint: 198.51.100.1, public_key: {} }}
    peers:
      a: {{ routes: [0.0.0.0/0] }}
)",
                                     kGw));
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    auto e = l->at("fleets.road.peers.a.routes[0]");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message ==
          "'0.0.0.0/0' is a default route: routes: lists prefixes a member announces; to send a peer's traffic out through a controller, "
          "set exit_node: <controller> on the peer (or the fleet)");
}
