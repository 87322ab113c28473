// plan/render: each node's desired HostState and the text artefacts (hosts, wg-quick, Traefik).
// The fleet is the reference's wg-test-one with real keys (made with `wg genkey | wg pubkey` while
// writing this file); expected addresses come from shared/reference/clan-address-plan.md
// ("Who gets what") or from Python's hashlib (peer3: SHA-256 starts e42bbf8533f4f0b1).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "plan/render.hpp"

using namespace wgf;
using model::FwKind;
using test::strs;
using model::HostState;
using model::WgInterface;
using model::WgPeer;

namespace {

// Public keys (and one private key) from wireguard-tools.
constexpr const char* kC1 = "cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=";
constexpr const char* kC2 = "M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=";
constexpr const char* kP1 = "j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=";
constexpr const char* kP1Priv = "IPq+UnMYsmMqwDhTuBRTOtjGXCwEvIGeA1oGP9Upb24=";
constexpr const char* kP2 = "Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY=";
constexpr const char* kP3 = "fwPl3x5N338IdrP7PXDTlSMQAK32JIOnNuA/fToAQ3c=";

const std::string kClan = test::kClanFleetYaml;

model::Key key(const char* b64) {
    auto k = model::Key::from_base64(b64);
    REQUIRE(k);
    return *k;
}

const WgPeer& peer(const WgInterface& w, const char* b64) {
    auto it = w.peers.find(key(b64));
    REQUIRE(it != w.peers.end());
    return it->second;
}

std::string ep(const std::optional<model::Endpoint>& e) { return e ? e->str() : "(none)"; }

using Strings = std::vector<std::string>;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Controllers

TEST_CASE("controller: addresses, listen port and its WireGuard peers", "[render][clan]") {
    auto r = test::load_valid(kClan);
    plan::Desired d = plan::render_host(*r.fw, "controller1");
    const HostState& hs = d.state;
    REQUIRE(hs.interfaces.size() == 1);
    const WgInterface& w = hs.interfaces.at("wg-test-one");
    const model::InterfaceLabels& l = d.labels.of("wg-test-one");
    CHECK(w.name == "wg-test-one");
    CHECK(l.fleet == "wg-test-one");
    CHECK(w.listen_port.value_or(0) == 51820);
    CHECK_FALSE(w.mtu);
    CHECK(strs(w.addresses) == Strings{"fd51:19c1:3b:f700::1/40"});
    CHECK(l.pending.empty());
    REQUIRE(w.peers.size() == 4);
    CHECK(l.peer_names.size() == 4);

    // Other controllers: their /56 and their endpoint with its port; in a hub also the routes of
    // their own peers (peer3's 10.20.0.0/16), which controller1 relays through controller2.
    const WgPeer& c2 = peer(w, kC2);
    CHECK(l.peer_names.at(key(kC2)) == "controller2");
    CHECK(strs(c2.allowed_ips) == Strings{"10.20.0.0/16", "fd51:19c1:c1:aa00::/56"});
    CHECK(ep(c2.endpoint) == "vpn2.example.com:51821");
    CHECK(c2.keepalive == 25);

    // Peers: their /96 in every controller subnet, no endpoint.
    const WgPeer& p1 = peer(w, kP1);
    CHECK(l.peer_names.at(key(kP1)) == "peer1");
    CHECK(strs(p1.allowed_ips) == Strings{"fd51:19c1:3b:f700:6987:50a0::/96", "fd51:19c1:c1:aa00:6987:50a0::/96"});
    CHECK_FALSE(p1.endpoint);
    CHECK(p1.keepalive == 25);

    const WgPeer& p2 = peer(w, kP2);
    CHECK(strs(p2.allowed_ips) == Strings{"fd51:19c1:3b:f700:3b21:3ced::/96", "fd51:19c1:c1:aa00:3b21:3ced::/96"});
    CHECK_FALSE(p2.endpoint);
    CHECK(p2.keepalive == 25);

    // peer3's IPv4 route is reached through its own controller (controller2), not directly.
    const WgPeer& p3 = peer(w, kP3);
    CHECK(strs(p3.allowed_ips) == Strings{"fd51:19c1:3b:f700:e42b:bf85::/96", "fd51:19c1:c1:aa00:e42b:bf85::/96"});
    CHECK_FALSE(p3.endpoint);
    CHECK(p3.keepalive == 25);

    // No entry for itself.
    CHECK(w.peers.count(key(kC1)) == 0);
}

TEST_CASE("controller: kernel routes, forwarding and firewall", "[render][clan]") {
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "controller1").state;
    // The /56s and /96s lie inside the /40 on the interface: only the member route needs a kernel route.
    REQUIRE(hs.routes.size() == 1);
    CHECK(hs.routes.begin()->dst.str() == "10.20.0.0/16");
    CHECK(hs.routes.begin()->dev == "wg-test-one");

    CHECK(hs.sysctls.count("net/ipv6/conf/all/forwarding"));
    CHECK(hs.sysctls["net/ipv6/conf/all/forwarding"] == "1");

    bool accepts_port = false;
    for (const auto& [id, rule] : hs.firewall)
        if (rule.kind == FwKind::accept_udp && rule.port == 51820) accepts_port = true;
    CHECK(accepts_port);
}

TEST_CASE("controller with an endpoint port: its peers dial that port", "[render][clan]") {
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "controller2").state;
    const WgInterface& w = hs.interfaces.at("wg-test-one");
    CHECK(strs(w.addresses) == Strings{"fd51:19c1:c1:aa00::1/40"});
    const WgPeer& c1 = peer(w, kC1);
    CHECK(strs(c1.allowed_ips) == Strings{"fd51:19c1:3b:f700::/56"});
    // No port in the endpoint: the fleet port.
    CHECK(ep(c1.endpoint) == "vpn1.example.com:51820");
    CHECK(c1.keepalive == 25);
    CHECK(strs(peer(w, kP1).allowed_ips) == Strings{"fd51:19c1:3b:f700:6987:50a0::/96", "fd51:19c1:c1:aa00:6987:50a0::/96"});
}

TEST_CASE("reference: a controller listens on the fleet port", "[render][clan][spec]") {
    // clan-address-plan.md, "Who gets what": "Controller C ... Listens on the fleet port (default
    // 51820)". controller2's endpoint names 51821 (a NAT mapping to the fleet port, as the
    // example clan-fleet.yaml explains); that is where peers dial, not what controller2 binds.
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "controller2").state;
    CHECK(hs.interfaces.at("wg-test-one").listen_port.value_or(0) == 51820);
}

TEST_CASE("a hub controller relaying a peer's IPv4 routes forwards IPv4", "[render][clan]") {
    // peer3 routes 10.20.0.0/16; in a hub, peer1 sends that traffic to controller1, which must
    // forward it on to peer3 (controller1's own kernel route for 10.20.0.0/16 shows it does).
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "controller1").state;
    REQUIRE(hs.routes.size() == 1);
    CHECK(hs.sysctls.count("net/ipv4/ip_forward") == 1);
}

// ---------------------------------------------------------------------------------------------
// Peers

TEST_CASE("peer: one address per controller, controllers as peers, no listen port", "[render][clan]") {
    auto r = test::load_valid(kClan);
    plan::Desired d = plan::render_host(*r.fw, "peer1");
    const HostState& hs = d.state;
    REQUIRE(hs.interfaces.size() == 1);
    const WgInterface& w = hs.interfaces.at("wg-test-one");
    CHECK_FALSE(w.listen_port);
    CHECK(strs(w.addresses) == Strings{"fd51:19c1:3b:f700:6987:50a0:9b93:4337/56", "fd51:19c1:c1:aa00:6987:50a0:9b93:4337/56"});
    REQUIRE(w.peers.size() == 2);

    const WgPeer& c1 = peer(w, kC1);
    CHECK(d.labels.peer_name("wg-test-one", key(kC1)) == "controller1");
    // The designated controller also carries the other peers' routes (hub topology).
    CHECK(strs(c1.allowed_ips) == Strings{"10.20.0.0/16", "fd51:19c1:3b:f700::/56"});
    CHECK(ep(c1.endpoint) == "vpn1.example.com:51820");
    CHECK(c1.keepalive == 25);

    const WgPeer& c2 = peer(w, kC2);
    CHECK(strs(c2.allowed_ips) == Strings{"fd51:19c1:c1:aa00::/56"});
    CHECK(ep(c2.endpoint) == "vpn2.example.com:51821");
    CHECK(c2.keepalive == 25);

    // Peers never hold each other in a hub.
    CHECK(w.peers.count(key(kP2)) == 0);
    CHECK(w.peers.count(key(kP3)) == 0);

    // The routed prefix needs a kernel route; the /56s are on-link.
    REQUIRE(hs.routes.size() == 1);
    CHECK(hs.routes.begin()->dst.str() == "10.20.0.0/16");
    // A plain peer neither forwards nor opens a port.
    CHECK(hs.sysctls.empty());
    for (const auto& [id, rule] : hs.firewall) CHECK(rule.kind != FwKind::accept_udp);
}

TEST_CASE("peer with routes: forwards IPv4 and its designated controller does not loop its own routes", "[render][clan]") {
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "peer3").state;
    const WgInterface& w = hs.interfaces.at("wg-test-one");
    CHECK(strs(w.addresses) == Strings{"fd51:19c1:3b:f700:e42b:bf85:33f4:f0b1/56", "fd51:19c1:c1:aa00:e42b:bf85:33f4:f0b1/56"});
    CHECK(strs(peer(w, kC2).allowed_ips) == Strings{"fd51:19c1:c1:aa00::/56"});
    CHECK(strs(peer(w, kC1).allowed_ips) == Strings{"fd51:19c1:3b:f700::/56"});
    CHECK(hs.routes.empty());
    CHECK(hs.sysctls.count("net/ipv4/ip_forward") == 1);
    CHECK_FALSE(w.listen_port);
}

TEST_CASE("keepalive follows the fleet everywhere", "[render][clan]") {
    std::string yaml = kClan;
    yaml.replace(yaml.find("    controllers:"), 0, "    keepalive: 0\n");
    auto r = test::load_valid(yaml);
    for (const char* node : {"controller1", "controller2", "peer1", "peer2", "peer3"}) {
        HostState hs = plan::render_host(*r.fw, node).state;
        for (const auto& [k, p] : hs.interfaces.at("wg-test-one").peers) {
            INFO(node << " -> " << k.base64());
            CHECK(p.keepalive == 0);
        }
    }
}

TEST_CASE("an interface override, mtu and a controller's own routes", "[render][clan]") {
    auto r = test::load_valid(R"(fleets:
  wg-test-one:
    interface: wg-mesh
    mtu: 1420
    controllers:
      controller1: { endpoint: vpn1.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=, routes: [192.168.50.0/24] }
    peers:
      peer1: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)");
    plan::Desired dc = plan::render_host(*r.fw, "controller1");
    const HostState& c = dc.state;
    REQUIRE(c.interfaces.count("wg-mesh"));
    CHECK(c.interfaces.at("wg-mesh").mtu == std::optional<uint32_t>(1420));
    CHECK(dc.labels.of("wg-mesh").fleet == "wg-test-one");
    // Its own LAN: it forwards IPv4 for it.
    CHECK(c.sysctls.count("net/ipv4/ip_forward") == 1);

    HostState p = plan::render_host(*r.fw, "peer1").state;
    const WgInterface& w = p.interfaces.at("wg-mesh");
    CHECK(strs(peer(w, kC1).allowed_ips) == Strings{"192.168.50.0/24", "fd51:19c1:3b:f700::/56"});
    REQUIRE(p.routes.size() == 1);
    CHECK(p.routes.begin()->dst.str() == "192.168.50.0/24");
    CHECK(p.routes.begin()->dev == "wg-mesh");
}

TEST_CASE("pending members are listed, not configured", "[render][pending]") {
    std::string yaml = kClan + "      peer4: { controller: controller1 }\n";
    auto r = test::load_valid(yaml);
    plan::Desired d = plan::render_host(*r.fw, "controller1");
    const WgInterface& w = d.state.interfaces.at("wg-test-one");
    const model::InterfaceLabels& l = d.labels.of("wg-test-one");
    CHECK(l.pending == Strings{"peer4"});
    CHECK(w.peers.size() == 4);
    for (const auto& [k, name] : l.peer_names) CHECK(name != "peer4");

    // A controller without a key is pending on the peers.
    auto r2 = test::load_valid(R"(fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com }
    peers:
      peer1: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)");
    plan::Desired dp = plan::render_host(*r2.fw, "peer1");
    const HostState& p = dp.state;
    CHECK(dp.labels.of("wg-test-one").pending == Strings{"controller1"});
    CHECK(p.interfaces.at("wg-test-one").peers.empty());
    // It still gets its address.
    CHECK(strs(p.interfaces.at("wg-test-one").addresses) == Strings{"fd51:19c1:3b:f700:6987:50a0:9b93:4337/56"});
}

// Nothing rejects two members with one public key; the device holds a key once. The member the
// renderer reaches first (controllers, then peers in name order) keeps it, whichever order the
// peers are put into the map in: enough sharers that a sort which is not stable mixes them up.
TEST_CASE("members sharing a public key: the first one reached keeps it", "[render][clan]") {
    std::string head = std::string("fleets:\n  wg-test-one:\n    controllers:\n") +
                       "      c1: { endpoint: vpn1.example.com, public_key: " + kC1 + " }\n" +
                       "      c2: { endpoint: vpn2.example.com, public_key: " + kC2 + " }\n" + "    peers:\n";
    auto member = [](int i, const char* b64) {
        return fmt::format("      p{:02}: {{ controller: c1, public_key: {}, routes: [10.9.{}.0/24] }}\n", i, b64, i);
    };
    std::string shared = head, alone = head + member(0, kP1);
    for (int i = 0; i < 40; ++i) shared += member(i, kP1);
    shared += member(40, kC2);  // after the controller with that key
    auto r = test::load_valid(shared);
    auto ref = test::load_valid(alone);
    plan::Desired d = plan::render_host(*r.fw, "c1");
    plan::Desired want = plan::render_host(*ref.fw, "c1");
    const WgInterface& w = d.state.interfaces.at("wg-test-one");
    REQUIRE(w.peers.size() == 2);
    CHECK(w.peers == want.state.interfaces.at("wg-test-one").peers);
    CHECK(d.labels.peer_name("wg-test-one", key(kP1)) == "p00");
    CHECK(d.labels.peer_name("wg-test-one", key(kC2)) == "c2");
}

TEST_CASE("a node in no fleet renders nothing", "[render]") {
    auto r = test::load_valid(kClan);
    HostState hs = plan::render_host(*r.fw, "stranger").state;
    CHECK(hs == HostState{});
}

// ---------------------------------------------------------------------------------------------
// Hosts

TEST_CASE("hosts entries: <node>.<fleet>.<domain>, peers at their designated controller's address", "[render][hosts]") {
    auto r = test::load_valid(kClan);
    auto entries = plan::render_hosts_entries(*r.fw, "peer1");
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto& e : entries) got.emplace_back(e.name, e.addr.str());
    std::vector<std::pair<std::string, std::string>> want = {
        {"controller1.wg-test-one.example.internal", "fd51:19c1:3b:f700::1"},
        {"controller2.wg-test-one.example.internal", "fd51:19c1:c1:aa00::1"},
        {"peer1.wg-test-one.example.internal", "fd51:19c1:3b:f700:6987:50a0:9b93:4337"},
        {"peer2.wg-test-one.example.internal", "fd51:19c1:c1:aa00:3b21:3ced:3e:89b3"},
        {"peer3.wg-test-one.example.internal", "fd51:19c1:c1:aa00:e42b:bf85:33f4:f0b1"},
    };
    CHECK(got == want);

    CHECK(plan::render_hosts_file(entries) ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "fd51:19c1:3b:f700::1 controller1.wg-test-one.example.internal\n"
          "fd51:19c1:c1:aa00::1 controller2.wg-test-one.example.internal\n"
          "fd51:19c1:3b:f700:6987:50a0:9b93:4337 peer1.wg-test-one.example.internal\n"
          "fd51:19c1:c1:aa00:3b21:3ced:3e:89b3 peer2.wg-test-one.example.internal\n"
          "fd51:19c1:c1:aa00:e42b:bf85:33f4:f0b1 peer3.wg-test-one.example.internal\n");

    // The hosts file is one of the node's managed files.
    HostState hs = plan::render_host(*r.fw, "peer1").state;
    REQUIRE(hs.files.count("/run/wg_fleet_hosts"));
    CHECK(hs.files.at("/run/wg_fleet_hosts").content == plan::render_hosts_file(entries));
}

TEST_CASE("hosts entries without a domain, and the wireguard fleet", "[render][hosts]") {
    auto r = test::load_valid(R"(fleets:
  wireguard:
    controllers:
      controller: { endpoint: vpn.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
    peers:
      peer1: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)");
    CHECK(plan::render_hosts_file(plan::render_hosts_entries(*r.fw, "controller")) ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "fd28:387a:c1:4700::1 controller.wireguard\n"
          "fd28:387a:c1:4700:6987:50a0:9b93:4337 peer1.wireguard\n");
}

TEST_CASE("hosts entries cover only the node's fleets unless asked for all", "[render][hosts]") {
    auto r = test::load_valid(R"(fleets:
  wireguard:
    controllers:
      controller: { endpoint: vpn.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
    port: 51821
    public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=
    peers:
      laptop: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)");
    auto mine = plan::render_hosts_file(plan::render_hosts_entries(*r.fw, "laptop"));
    CHECK(mine ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "fd00:a0a8:34d:2a00:5eec:dc4:19aa:8337 laptop.southeast\n"
          "fd00:a0a8:34d:2a00::1 server.southeast\n");
    auto all = plan::render_hosts_entries(*r.fw, "");
    CHECK(all.size() == 3);
}

// ---------------------------------------------------------------------------------------------
// wg-quick

TEST_CASE("wg-quick config of a peer, exact text", "[render][wg-quick]") {
    auto r = test::load_valid(kClan);
    CHECK(plan::render_wg_quick(*r.fw, "wg-test-one", "peer1", std::string(kP1Priv)) ==
          "# wg-quick config of peer1 in fleet wg-test-one (interface wg-test-one), rendered by wg-fleet.\n"
          "# Not expressed here (wg-fleet applies them; under wg-quick, PostUp/PostDown or other tools must):\n"
          "#   file /run/wg_fleet_hosts\n"
          "[Interface]\n"
          "PrivateKey = IPq+UnMYsmMqwDhTuBRTOtjGXCwEvIGeA1oGP9Upb24=\n"
          "Address = fd51:19c1:3b:f700:6987:50a0:9b93:4337/56, fd51:19c1:c1:aa00:6987:50a0:9b93:4337/56\n"
          "\n"
          "[Peer]\n"
          "# controller1\n"
          "PublicKey = cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=\n"
          "AllowedIPs = 10.20.0.0/16, fd51:19c1:3b:f700::/56\n"
          "Endpoint = vpn1.example.com:51820\n"
          "PersistentKeepalive = 25\n"
          "\n"
          "[Peer]\n"
          "# controller2\n"
          "PublicKey = M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=\n"
          "AllowedIPs = fd51:19c1:c1:aa00::/56\n"
          "Endpoint = vpn2.example.com:51821\n"
          "PersistentKeepalive = 25\n");
}

TEST_CASE("wg-quick without the private key loads it on the node, controllers get ListenPort", "[render][wg-quick]") {
    auto r = test::load_valid(kClan);
    std::string peer1 = plan::render_wg_quick(*r.fw, "wg-test-one", "peer1", std::nullopt);
    CHECK_FALSE(test::contains(peer1, "PrivateKey ="));
    CHECK(test::contains(peer1, "PostUp = wg set %i private-key /var/lib/wg-fleet/"));
    CHECK_FALSE(test::contains(peer1, "ListenPort"));

    std::string c1 = plan::render_wg_quick(*r.fw, "wg-test-one", "controller1", std::nullopt);
    CHECK(test::contains(c1, "\nAddress = fd51:19c1:3b:f700::1/40\n"));
    CHECK(test::contains(c1, "\nListenPort = 51820\n"));
    CHECK(test::contains(c1,
                         "\n[Peer]\n# peer1\nPublicKey = j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=\n"
                         "AllowedIPs = fd51:19c1:3b:f700:6987:50a0::/96, fd51:19c1:c1:aa00:6987:50a0::/96\n"
                         "PersistentKeepalive = 25\n"));
    // Four peers: controller2, peer1..3.
    size_t n = 0;
    for (size_t pos = 0; (pos = c1.find("[Peer]", pos)) != std::string::npos; ++pos) ++n;
    CHECK(n == 4);
}

// ---------------------------------------------------------------------------------------------
// Subnet-style fleets

TEST_CASE("subnet style: the server and a client", "[render][subnet]") {
    auto r = test::load_valid(R"(fleets:
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
    port: 51820
    public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=
    peers:
      laptop: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)");
    HostState s = plan::render_host(*r.fw, "server").state;
    const WgInterface& sw = s.interfaces.at("wg_southeast");
    CHECK(sw.listen_port.value_or(0) == 51820);
    CHECK(strs(sw.addresses) == Strings{"fd00:a0a8:34d:2a00::1/64"});
    REQUIRE(sw.peers.size() == 1);
    CHECK(strs(peer(sw, kP1).allowed_ips) == Strings{"fd00:a0a8:34d:2a00:5eec:dc4:19aa:8337/128"});
    CHECK_FALSE(peer(sw, kP1).endpoint);
    CHECK(s.sysctls.count("net/ipv6/conf/all/forwarding") == 1);

    plan::Desired dc = plan::render_host(*r.fw, "laptop");
    const HostState& c = dc.state;
    const WgInterface& cw = c.interfaces.at("wg_southeast");
    CHECK_FALSE(cw.listen_port);
    CHECK(strs(cw.addresses) == Strings{"fd00:a0a8:34d:2a00:5eec:dc4:19aa:8337/64"});
    REQUIRE(cw.peers.size() == 1);
    const WgPeer& sp = peer(cw, kC1);
    CHECK(dc.labels.peer_name("wg_southeast", key(kC1)) == "server");
    CHECK(strs(sp.allowed_ips) == Strings{"fd00:a0a8:34d:2a00::/64"});
    CHECK(ep(sp.endpoint) == "1.2.3.4:51820");
    CHECK(sp.keepalive == 25);
}

// ---------------------------------------------------------------------------------------------
// Edge gateway: forwards and HTTP routes (seed 004)

namespace {
const std::string kEdge = R"(domain: edge.example.net
fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=, ipv4: 10.50.0.1 }
    peers:
      vm-123: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, ipv4: 10.50.0.123 }
      vm-124: { public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY=, ipv4: 10.50.0.124 }
forwards:
  - { name: vm-123-ssh, node: edge1, proto: tcp, port: 22015, to: vm-123, to_port: 22 }
  - { name: vm-124-game, node: edge1, proto: udp, port: 27015, to: vm-124 }
http_routes:
  - { name: vm-123, node: edge1, host: vm-123.service.com, to: "http://vm-123:8080", certresolver: letsencrypt }
  - { name: vm-124-api, node: edge1, host: api.service.com, to: "http://10.50.0.124:3000/api" }
)";
}

TEST_CASE("edge gateway: forwards become DNAT and masquerade intents and turn on forwarding", "[render][edge]") {
    auto r = test::load_valid(kEdge);
    HostState hs = plan::render_host(*r.fw, "edge1").state;

    std::vector<const model::FwRule*> dnat, masq;
    for (const auto& [id, rule] : hs.firewall) {
        CHECK(id == rule.id);
        if (rule.kind == FwKind::dnat) dnat.push_back(&rule);
        if (rule.kind == FwKind::masquerade) masq.push_back(&rule);
    }
    auto find = [&](model::Proto proto, uint16_t port, const char* to) -> const model::FwRule* {
        for (const auto* d : dnat)
            if (d->proto == proto && d->port == port && d->to && d->to->str() == to) return d;
        return nullptr;
    };
    const auto* ssh4 = find(model::Proto::tcp, 22015, "10.50.0.123");
    REQUIRE(ssh4);
    CHECK(ssh4->to_port == 22);
    const auto* game4 = find(model::Proto::udp, 27015, "10.50.0.124");
    REQUIRE(game4);
    CHECK(game4->to_port == 27015);  // to_port defaults to port
    // IPv6 clients reach the same members at their fleet addresses (Python: edge /56 fda1:cb10:b4:ba00::/56).
    const auto* ssh6 = find(model::Proto::tcp, 22015, "fda1:cb10:b4:ba00:97b1:d8b9:8e6:7460");
    REQUIRE(ssh6);
    CHECK(ssh6->to_port == 22);
    const auto* game6 = find(model::Proto::udp, 27015, "fda1:cb10:b4:ba00:7de3:bca0:a5cb:9c5e");
    REQUIRE(game6);
    CHECK(dnat.size() == 4);
    for (const auto* d : dnat) CHECK(d->oif.empty());  // prerouting: the output interface is not known yet

    REQUIRE(masq.size() >= 1);
    CHECK(masq[0]->oif == "edge");

    CHECK(hs.sysctls["net/ipv4/ip_forward"] == "1");
    CHECK(hs.sysctls["net/ipv6/conf/all/forwarding"] == "1");

    // The gateway holds each VM with its /96 and its IPv4 address.
    const WgInterface& w = hs.interfaces.at("edge");
    CHECK(strs(peer(w, kP1).allowed_ips) == Strings{"10.50.0.123/32", "fda1:cb10:b4:ba00:97b1:d8b9::/96"});
    CHECK(strs(w.addresses) == Strings{"10.50.0.1/24", "fda1:cb10:b4:ba00::1/40"});  // a set: IPv4 sorts first
}

TEST_CASE("edge gateway: a forward to an explicit address is one DNAT rule of the address's family", "[render][edge]") {
    // vm-124 routes 192.0.2.0/24 (a LAN behind it); the forwards name addresses, not members.
    std::string yaml = kEdge;
    yaml.replace(yaml.find("ipv4: 10.50.0.124 }"), 19, "ipv4: 10.50.0.124, routes: [192.0.2.0/24] }");
    yaml.replace(yaml.find("http_routes:"), 0,
                 "  - { name: lan-web, node: edge1, port: 8080, to: 192.0.2.7, to_port: 80 }\n"
                 "  - { name: pool-dns, node: edge1, proto: udp, port: 5353, to: 10.50.0.200, to_port: 53 }\n"
                 "  - { name: web6, node: edge1, port: 8443, to: \"fda1:cb10:b4:ba00::abcd\", to_port: 443 }\n");
    auto r = test::load_valid(yaml);
    HostState hs = plan::render_host(*r.fw, "edge1").state;
    auto rule = [&](const std::string& id) -> const model::FwRule& {
        INFO(id);
        REQUIRE(hs.firewall.count(id));
        return hs.firewall.at(id);
    };
    const auto& lan = rule("dnat-lan-web-v4");
    CHECK(lan.kind == FwKind::dnat);
    CHECK(lan.proto == model::Proto::tcp);
    CHECK(lan.port == 8080);
    CHECK(lan.to->str() == "192.0.2.7");
    CHECK(lan.to_port == 80);
    CHECK(hs.firewall.count("dnat-lan-web-v6") == 0);
    const auto& dns = rule("dnat-pool-dns-v4");
    CHECK(dns.proto == model::Proto::udp);
    CHECK(dns.to->str() == "10.50.0.200");
    CHECK(dns.to_port == 53);
    CHECK(hs.firewall.count("dnat-pool-dns-v6") == 0);
    const auto& web6 = rule("dnat-web6-v6");
    CHECK(web6.to->str() == "fda1:cb10:b4:ba00::abcd");
    CHECK(hs.firewall.count("dnat-web6-v4") == 0);
    // Out of the fleet's interface, translated connections only.
    CHECK(rule("masquerade-edge").oif == "edge");
    CHECK(hs.sysctls["net/ipv4/ip_forward"] == "1");
}

TEST_CASE("edge gateway: an IPv6-only explicit forward turns on IPv6 forwarding alone", "[render][edge]") {
    auto r = test::load_valid(R"(fleets:
  edge:
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
    peers:
      vm-123: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, routes: ["2001:db8:5::/48"] }
forwards:
  - { name: web, node: vm-123, port: 80, to: "fda1:cb10:b4:ba00::1" }
)");
    HostState hs = plan::render_host(*r.fw, "vm-123").state;
    REQUIRE(hs.firewall.count("dnat-web-v6"));
    CHECK(hs.firewall.at("dnat-web-v6").to->str() == "fda1:cb10:b4:ba00::1");
    CHECK(hs.firewall.at("dnat-web-v6").to_port == 80);
    CHECK(hs.sysctls.count("net/ipv6/conf/all/forwarding") == 1);
    CHECK(hs.sysctls.count("net/ipv4/ip_forward") == 0);
}

TEST_CASE("edge gateway: a VM reaches the fleet's IPv4 pool through the gateway", "[render][edge]") {
    auto r = test::load_valid(kEdge);
    HostState hs = plan::render_host(*r.fw, "vm-123").state;
    const WgInterface& w = hs.interfaces.at("edge");
    CHECK(strs(w.addresses) == Strings{"10.50.0.123/24", "fda1:cb10:b4:ba00:97b1:d8b9:8e6:7460/56"});
    const auto allowed = strs(peer(w, kC1).allowed_ips);
    CHECK(std::find(allowed.begin(), allowed.end(), "10.50.0.0/24") != allowed.end());
    CHECK(std::find(allowed.begin(), allowed.end(), "fda1:cb10:b4:ba00::/56") != allowed.end());
    CHECK(ep(peer(w, kC1).endpoint) == "198.51.100.10:51820");
    // Forwards and routes belong to edge1 only.
    for (const auto& [id, rule] : hs.firewall) CHECK(rule.kind != FwKind::dnat);
    CHECK(hs.files.size() == 1);  // the hosts file, no Traefik files
}

TEST_CASE("wg-quick of a gateway names every sysctl, firewall rule and file it leaves to others", "[render][wg-quick][edge]") {
    auto r = test::load_valid(kEdge);
    const std::string conf = plan::render_wg_quick(*r.fw, "edge", "edge1", std::nullopt);
    const HostState hs = plan::render_host(*r.fw, "edge1").state;
    REQUIRE(conf.find("[Interface]") != std::string::npos);
    const std::string head = conf.substr(0, conf.find("[Interface]"));
    // Everything wg-fleet applies on edge1 besides the device is named, as the node's desired
    // state holds it; this node's rules all concern its one interface.
    REQUIRE(hs.sysctls.count("net/ipv4/ip_forward"));
    for (const auto& [k, v] : hs.sysctls) CHECK(test::contains(head, fmt::format("#   sysctl {} = {}\n", k, v)));
    REQUIRE(hs.firewall.size() >= 4);
    for (const auto& [id, rule] : hs.firewall) CHECK(test::contains(head, fmt::format("#   firewall rule {}: ", id)));
    REQUIRE(hs.files.size() >= 3);
    for (const auto& [path, f] : hs.files) CHECK(test::contains(head, "#   file " + path + "\n"));
    // Every line before [Interface] is a comment wg-quick ignores.
    size_t at = 0;
    while (at < head.size()) {
        CHECK(head[at] == '#');
        at = head.find('\n', at) + 1;
    }
    // A peer: its interface's IPv4 sysctl and the hosts file.
    const std::string vm = plan::render_wg_quick(*r.fw, "edge", "vm-123", std::nullopt);
    CHECK(vm.substr(0, vm.find("[Interface]")) ==
          "# wg-quick config of vm-123 in fleet edge (interface edge), rendered by wg-fleet.\n"
          "# Not expressed here (wg-fleet applies them; under wg-quick, PostUp/PostDown or other tools must):\n"
          "#   sysctl net/ipv4/conf/edge/promote_secondaries = 1\n"
          "#   file /run/wg_fleet_hosts\n");
}

TEST_CASE("edge gateway: http_routes become Traefik dynamic files", "[render][edge][traefik]") {
    auto r = test::load_valid(kEdge);
    HostState hs = plan::render_host(*r.fw, "edge1").state;
    REQUIRE(hs.files.count("/etc/traefik/dynamic/vm-123.yml"));
    CHECK(hs.files.at("/etc/traefik/dynamic/vm-123.yml").content ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "http:\n"
          "  routers:\n"
          "    \"vm-123\":\n"
          "      rule: \"Host(`vm-123.service.com`)\"\n"
          "      entryPoints: [\"websecure\"]\n"
          "      service: \"vm-123\"\n"
          "      tls:\n"
          "        certResolver: \"letsencrypt\"\n"
          "  services:\n"
          "    \"vm-123\":\n"
          "      loadBalancer:\n"
          "        servers:\n"
          "          - url: \"http://10.50.0.123:8080\"\n");
    REQUIRE(hs.files.count("/etc/traefik/dynamic/vm-124-api.yml"));
    CHECK(hs.files.at("/etc/traefik/dynamic/vm-124-api.yml").content ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "http:\n"
          "  routers:\n"
          "    \"vm-124-api\":\n"
          "      rule: \"Host(`api.service.com`)\"\n"
          "      entryPoints: [\"websecure\"]\n"
          "      service: \"vm-124-api\"\n"
          "  services:\n"
          "    \"vm-124-api\":\n"
          "      loadBalancer:\n"
          "        servers:\n"
          "          - url: \"http://10.50.0.124:3000/api\"\n");
    CHECK(hs.files.at("/etc/traefik/dynamic/vm-123.yml").mode == 0644);
}

TEST_CASE("http route targets: a member without IPv4 is reached at its bracketed IPv6 address", "[render][traefik]") {
    auto r = test::load_valid(kClan);
    model::HttpRoute route;
    route.name = "app";
    route.node = "controller1";
    route.host = "app.example.com";
    route.to = "http://peer2:8080/x";
    auto t = plan::resolve_route_target(*r.fw, route);
    REQUIRE(t);
    // peer2's address in its designated controller2's subnet.
    CHECK(*t == "http://[fd51:19c1:c1:aa00:3b21:3ced:3e:89b3]:8080/x");
    route.to = "https://peer1";
    t = plan::resolve_route_target(*r.fw, route);
    REQUIRE(t);
    CHECK(*t == "https://[fd51:19c1:3b:f700:6987:50a0:9b93:4337]");
    route.to = "http://ghost:80";
    CHECK_FALSE(plan::resolve_route_target(*r.fw, route).has_value());
}

// The edge gateway's routes, served by Caddy: a plain-HTTP site, an HTTPS one, an IPv6 target.
const std::string kEdgeCaddy = kEdge.substr(0, kEdge.find("http_routes:")) + R"(http_server: caddy
http_routes:
  - { name: vm-123, node: edge1, host: vm-123.service.com, to: "http://vm-123:8080", entrypoint: web }
  - { name: vm-124-api, node: edge1, host: api.service.com, to: "https://10.50.0.124:3000/" }
  - { name: v6, node: edge1, host: v6.service.com, to: "http://[fd00::7]:81", entrypoint: web }
)";

TEST_CASE("http_server: caddy: one marked Caddyfile snippet per route and the reload after them", "[render][edge][caddy]") {
    auto r = test::load_valid(kEdgeCaddy);
    plan::Desired d = plan::render_host(*r.fw, "edge1");
    REQUIRE(d.state.files.count("/etc/caddy/wg-fleet/vm-123.caddy"));
    CHECK(d.state.files.at("/etc/caddy/wg-fleet/vm-123.caddy").content ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "# route vm-123\n"
          "http://vm-123.service.com {\n"
          "\treverse_proxy http://10.50.0.123:8080\n"
          "}\n");
    REQUIRE(d.state.files.count("/etc/caddy/wg-fleet/vm-124-api.caddy"));
    CHECK(test::contains(d.state.files.at("/etc/caddy/wg-fleet/vm-124-api.caddy").content,
                         "https://api.service.com {\n\treverse_proxy https://10.50.0.124:3000\n}\n"));
    CHECK_FALSE(d.state.files.count("/etc/traefik/dynamic/vm-123.yml"));
    REQUIRE(d.labels.reload);
    CHECK(d.labels.reload->dir == "/etc/caddy/wg-fleet");
    CHECK(d.labels.reload->command == "caddy reload --config /etc/caddy/Caddyfile");
    // A Traefik fleet has no reload: Traefik watches its directory.
    CHECK_FALSE(plan::render_host(*test::load_valid(kEdge).fw, "edge1").labels.reload);
    // Another node has no routes, but removing its last one needs the reload too.
    CHECK(plan::render_host(*r.fw, "vm-123").labels.reload);
}

namespace {
// Runs a shell command; its exit status and output.
std::pair<int, std::string> run_shell(const std::string& cmd) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
}  // namespace

TEST_CASE("caddy adapts and validates the generated snippets imported by a Caddyfile", "[render][caddy]") {
    auto r = test::load_valid(kEdgeCaddy);
    plan::Desired d = plan::render_host(*r.fw, "edge1");
    char tmpl[] = "/tmp/wgf-caddy-unit.XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    const std::string dir = tmpl;
    for (const auto& [path, f] : d.state.files) {
        if (!path.starts_with("/etc/caddy/wg-fleet/")) continue;
        std::ofstream(dir + "/" + path.substr(path.rfind('/') + 1)) << f.content;
    }
    std::ofstream(dir + "/Caddyfile") << "{\n\tadmin off\n}\nimport " << dir << "/*.caddy\n";
    // Caddy's own state (certificates, autosave) stays in the temporary directory.
    const std::string env = fmt::format("HOME={0} XDG_DATA_HOME={0} XDG_CONFIG_HOME={0} ", dir);
    auto adapted = run_shell(env + "caddy adapt --adapter caddyfile --config " + dir + "/Caddyfile");
    INFO(adapted.second);
    REQUIRE(adapted.first == 0);
    auto validated = run_shell(env + "caddy validate --adapter caddyfile --config " + dir + "/Caddyfile");
    INFO(validated.second);
    CHECK(validated.first == 0);
    run_shell("rm -rf " + dir);
    // Caddy's own reading of each site: its host and its upstream, as the YAML gives them.
    const auto json = nlohmann::json::parse(adapted.second.substr(adapted.second.find('{')));
    std::map<std::string, std::string> upstream;  // host -> dial
    std::set<std::string> http_only;              // hosts of the server on :80
    for (const auto& [name, server] : json["apps"]["http"]["servers"].items()) {
        const bool plain = server["listen"] == nlohmann::json::array({":80"});
        for (const auto& route : server["routes"]) {
            const std::string host = route["match"][0]["host"][0];
            if (plain) http_only.insert(host);
            // A site's handlers sit in a subroute.
            for (const auto& h : route["handle"][0]["routes"][0]["handle"])
                if (h["handler"] == "reverse_proxy") upstream[host] = h["upstreams"][0]["dial"];
        }
    }
    CHECK(upstream == std::map<std::string, std::string>{{"vm-123.service.com", "10.50.0.123:8080"},
                                                         {"api.service.com", "10.50.0.124:3000"},
                                                         {"v6.service.com", "[fd00::7]:81"}});
    CHECK(http_only == std::set<std::string>{"vm-123.service.com", "v6.service.com"});
}

TEST_CASE("render_traefik_route escapes quotes in names", "[render][traefik]") {
    model::HttpRoute route;
    route.name = "a";
    route.host = "h.example.com";
    route.entrypoint = "we\"b";
    std::string out = plan::render_traefik_route(route, "http://10.0.0.1:80");
    CHECK(test::contains(out, "entryPoints: [\"we\\\"b\"]"));
}

// ---------------------------------------------------------------------------------------------
// Whole-fleet property

TEST_CASE("every pair of connected nodes agrees on keys and addresses", "[render][property]") {
    auto r = test::load_valid(kClan);
    const char* nodes[] = {"controller1", "controller2", "peer1", "peer2", "peer3"};
    std::map<std::string, std::string> pub = {{"controller1", kC1}, {"controller2", kC2}, {"peer1", kP1}, {"peer2", kP2}, {"peer3", kP3}};
    std::map<std::string, plan::Desired> hs;
    for (const char* n : nodes) hs[n] = plan::render_host(*r.fw, n);
    for (const char* a : nodes) {
        const WgInterface& wa = hs[a].state.interfaces.at("wg-test-one");
        for (const auto& [k, p] : wa.peers) {
            const std::string& name = hs[a].labels.peer_name("wg-test-one", k);
            INFO(a << " -> " << name);
            // The entry's key is the named member's key.
            CHECK(k.base64() == pub.at(name));
            // Whatever b holds as its addresses is allowed by a's entry for b.
            for (const auto& addr : hs[name].state.interfaces.at("wg-test-one").addresses) {
                bool allowed = false;
                for (const auto& ai : p.allowed_ips)
                    if (ai.contains(addr.addr)) allowed = true;
                INFO("address " << addr.str());
                CHECK(allowed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Several controllers: every member reaches every IPv4 address and every announced route.

namespace {

// Three controllers, peers on each, an IPv4 pool, IPv4 routes behind a peer and a controller,
// IPv6 routes behind a peer and a controller. Keys from wireguard-tools; the names say who is who.
const std::string kMulti = R"(fleets:
  multi:
    ipv4: 10.60.0.0/24
    topology: TOPOLOGY
    controllers:
      c1: { endpoint: 192.0.2.1, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
      c2: { endpoint: 192.0.2.2, public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=, routes: [192.168.2.0/24, "2001:db8:c2::/48"] }
      c3: { endpoint: 192.0.2.3, public_key: WUTtRe8NvkAPhLOehJ4iEPbDU0RMKcvsJVGGsGNVMX8= }
    peers:
      a1: { controller: c1, public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
      b1: { controller: c1, public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY=, endpoint: 192.0.2.11 }
      a2: { controller: c2, public_key: fwPl3x5N338IdrP7PXDTlSMQAK32JIOnNuA/fToAQ3c=, routes: [10.20.0.0/16] }
      a3: { controller: c3, public_key: inyOXO+Fj1DrxQETkfEVeC69UQdbRZ2hE4I52mcz0QA=, routes: ["2001:db8:a3::/48"], endpoint: 192.0.2.13 }
)";
constexpr const char* kMultiNodes[] = {"c1", "c2", "c3", "a1", "b1", "a2", "a3"};

std::string multi(const char* topology) {
    std::string y = kMulti;
    y.replace(y.find("TOPOLOGY"), 8, topology);
    return y;
}

bool has(const Strings& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

const WgPeer& named(const plan::Desired& d, const std::string& ifname, const std::string& name) {
    for (const auto& [k, n] : d.labels.of(ifname).peer_names)
        if (n == name) return d.state.interfaces.at(ifname).peers.at(k);
    FAIL("no entry for " << name << " on " << ifname);
    throw;
}

// WireGuard's view of a fleet: per node, its entries' allowed IPs; a packet goes to the entry with
// the longest matching prefix, and is accepted from an entry only if its source is routed back
// to that same entry. `local` is what a node answers itself (its addresses and its routes).
struct Net {
    std::map<std::string, WgInterface> wg;
    std::map<std::string, model::InterfaceLabels> labels;
    std::map<std::string, std::vector<model::Prefix>> local;
    std::map<std::string, std::set<model::Route>> routes;
    std::set<std::string> routers;

    std::optional<std::string> route(const std::string& node, const model::IpAddr& a) const {
        std::optional<std::string> best;
        int best_len = -1;
        for (const auto& [k, p] : wg.at(node).peers)
            for (const auto& ai : p.allowed_ips)
                if (ai.addr.family == a.family && ai.contains(a) && ai.len > best_len)
                    best = labels.at(node).peer_names.at(k), best_len = ai.len;
        return best;
    }
    bool owns(const std::string& node, const model::IpAddr& a) const {
        for (const auto& p : local.at(node))
            if (p.addr.family == a.family && p.contains(a)) return true;
        return false;
    }
    // Follows a packet from `from` (source `src`) to `dst`; returns where it was answered, or why not.
    std::string carry(std::string from, const model::IpAddr& src, const model::IpAddr& dst) const {
        std::string path = from;
        for (int hop = 0; hop < 8; ++hop) {
            if (owns(from, dst)) return "";
            if (hop > 0 && !routers.count(from)) return path + ": not a controller, cannot relay";
            auto next = route(from, dst);
            if (!next) return path + ": no route";
            path += " -> " + *next;
            auto back = route(*next, src);
            if (!back || *back != from) return path + ": dropped, source " + src.str() + " is routed to " + back.value_or("nobody");
            from = *next;
        }
        return path + ": loop";
    }
};

using Nodes = std::vector<std::string>;
const Nodes kMultiAll(std::begin(kMultiNodes), std::end(kMultiNodes));

Net simulate(const test::Rendered& r, const std::string& fleet, const Nodes& nodes) {
    Net n;
    const auto& f = r.l->cfg().fleets.at(fleet);
    for (const auto& node : nodes) {
        plan::Desired d = plan::render_host(*r.fw, node);
        const HostState& hs = d.state;
        const WgInterface& w = hs.interfaces.at(f.interface);
        n.wg[node] = w;
        n.labels[node] = d.labels.of(f.interface);
        n.routes[node] = hs.routes;
        for (const auto& a : w.addresses) n.local[node].push_back(model::Prefix::host(a.addr));
        if (const auto* m = plan::find_member(f, node))
            for (const auto& rt : m->routes) n.local[node].push_back(rt);
        if (f.controllers.count(node) || (f.style == model::FleetStyle::subnet && f.server == node)) n.routers.insert(node);
    }
    return n;
}

// The source addresses the kernel may pick for dst on a node: the preferred source of our route
// to dst if it has one, else those of its addresses that share the longest prefix with dst
// (RFC 6724 rule 8); among equals it may take any.
std::vector<model::IpAddr> sources_for(const Net& n, const std::string& node, const model::IpAddr& dst) {
    for (const auto& rt : n.routes.at(node))
        if (rt.dst.addr.family == dst.family && rt.dst.contains(dst) && rt.src) return {*rt.src};
    std::vector<model::IpAddr> best;
    int best_len = -1;
    for (const auto& a : n.wg.at(node).addresses) {
        if (a.addr.family != dst.family) continue;
        int len = 0;
        while (len < int(dst.bits()) && model::Prefix{a.addr, uint8_t(len + 1)}.contains(dst)) ++len;
        if (len > best_len) best.clear(), best_len = len;
        if (len == best_len) best.push_back(a.addr);
    }
    REQUIRE_FALSE(best.empty());
    return best;
}

void require_full_reach(const std::string& yaml, const std::string& fleet, const Nodes& nodes, const char* topology) {
    auto r = test::load_valid(yaml);
    Net n = simulate(r, fleet, nodes);
    const auto& f = r.l->cfg().fleets.at(fleet);
    const auto& fp = r.fw->plan.fleets.at(fleet);
    for (const auto& a : nodes)
        for (const auto& b : nodes) {
            if (a == b) continue;
            std::vector<model::IpAddr> targets{*plan::primary_address(f, fp, b), fp.ipv4.at(b)};
            if (const auto* m = plan::find_member(f, b))
                for (const auto& rt : m->routes) {
                    model::IpAddr first = rt.addr;
                    first.bytes[rt.addr.is_v4() ? 3 : 15] |= 1;
                    targets.push_back(first);
                }
            for (const auto& dst : targets)
                for (const auto& src : sources_for(n, a, dst)) {
                    INFO(topology << ": " << a << " (" << src.str() << ") -> " << b << " (" << dst.str() << ")");
                    CHECK(n.carry(a, src, dst) == "");
                    // The answer: from the address that was asked, back to the source.
                    CHECK(n.carry(b, dst, src) == "");
                }
        }
}

}  // namespace

TEST_CASE("several controllers, hub: every member reaches every member's IPv4 and IPv6 address and every announced route, both ways",
          "[render][clan][multi]") {
    require_full_reach(multi("hub"), "multi", kMultiAll, "hub");
}

TEST_CASE("several controllers, mesh: every member reaches every member's addresses and every announced route, both ways",
          "[render][clan][multi]") {
    require_full_reach(multi("mesh"), "multi", kMultiAll, "mesh");
}

TEST_CASE("subnet style with an IPv4 pool and routes: every member reaches every other and every route, both ways",
          "[render][subnet][multi]") {
    for (const char* topology : {"hub", "mesh"}) {
        std::string yaml = R"(fleets:
  lab:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 192.0.2.1
    public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=
    ipv4: 10.61.0.0/24
    topology: TOPOLOGY
    peers:
      x: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, endpoint: 192.0.2.5, routes: [10.21.0.0/16] }
      y: { public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY=, routes: ["2001:db8:77::/48"] }
      z: { public_key: fwPl3x5N338IdrP7PXDTlSMQAK32JIOnNuA/fToAQ3c= }
)";
        yaml.replace(yaml.find("TOPOLOGY"), 8, topology);
        require_full_reach(yaml, "lab", {"server", "x", "y", "z"}, topology);
    }
}

TEST_CASE("several controllers, hub: the allowed IPs of each role", "[render][clan][multi]") {
    auto r = test::load_valid(multi("hub"));
    const auto& fp = r.fw->plan.fleets.at("multi");
    auto v4 = [&](const char* n) { return model::Prefix::host(fp.ipv4.at(n)).str(); };
    auto net = [&](const char* c) { return fp.nets.at(c).str(); };

    // A controller: its own peers directly with their IPv4 address and every route; the peers of
    // another controller directly only for IPv6 (their /96s and IPv6 routes); their IPv4 address
    // and IPv4 routes through their controller.
    plan::Desired d1 = plan::render_host(*r.fw, "c1");
    const HostState& c1 = d1.state;
    auto w1 = [&](const std::string& name) { return strs(named(d1, "multi", name).allowed_ips); };
    Strings a1 = w1("a1");
    CHECK(has(a1, v4("a1")));
    Strings a2 = w1("a2");
    CHECK_FALSE(has(a2, v4("a2")));
    CHECK_FALSE(has(a2, "10.20.0.0/16"));
    CHECK(a2.size() == 3);  // its /96 in each controller's /56
    Strings a3 = w1("a3");
    CHECK(has(a3, "2001:db8:a3::/48"));
    CHECK_FALSE(has(a3, v4("a3")));
    Strings to_c2 = w1("c2");
    CHECK(to_c2 == Strings{"10.20.0.0/16", v4("a2"), v4("c2"), "192.168.2.0/24", "2001:db8:c2::/48", net("c2")});
    Strings to_c3 = w1("c3");
    CHECK(to_c3 == Strings{v4("a3"), v4("c3"), net("c3")});
    // Kernel routes for what lies outside its addresses: the IPv4 and IPv6 routes.
    std::set<std::string> routes;
    for (const auto& rt : c1.routes) routes.insert(rt.dst.str() + " " + rt.dev);
    CHECK(routes ==
          std::set<std::string>{"10.20.0.0/16 multi", "192.168.2.0/24 multi", "2001:db8:a3::/48 multi", "2001:db8:c2::/48 multi"});

    // A peer: everything of IPv4 and every route of another peer through its own controller; the
    // other controllers directly only for their /56 and their IPv6 routes.
    plan::Desired dp = plan::render_host(*r.fw, "a1");
    const WgInterface& pw = dp.state.interfaces.at("multi");
    auto to = [&](const std::string& name) { return strs(named(dp, "multi", name).allowed_ips); };
    CHECK(to("c1") == Strings{"10.20.0.0/16", "10.60.0.0/24", v4("c1"), "192.168.2.0/24", "2001:db8:a3::/48", net("c1")});
    CHECK(to("c2") == Strings{"2001:db8:c2::/48", net("c2")});
    CHECK(to("c3") == Strings{net("c3")});
    CHECK(pw.peers.size() == 3);
}

TEST_CASE("several controllers: wg-quick gives a peer's IPv6 routes the same preferred source", "[render][clan][multi][wg-quick]") {
    auto r = test::load_valid(multi("hub"));
    const auto& f = r.l->cfg().fleets.at("multi");
    std::string src = plan::primary_address(f, r.fw->plan.fleets.at("multi"), "a1")->str();
    std::string conf = plan::render_wg_quick(*r.fw, "multi", "a1", std::nullopt);
    INFO(conf);
    CHECK(test::contains(conf, "\nPostUp = ip -6 route change 2001:db8:a3::/48 dev %i src " + src + "\n"));
    CHECK(test::contains(conf, "\nPostUp = ip -6 route change 2001:db8:c2::/48 dev %i src " + src + "\n"));
    CHECK_FALSE(test::contains(conf, "route change 10."));
    // A controller's routes need none.
    CHECK_FALSE(test::contains(plan::render_wg_quick(*r.fw, "multi", "c1", std::nullopt), "route change"));
}

TEST_CASE("several controllers: no prefix is claimed by two entries of one device", "[render][clan][multi]") {
    for (const char* topology : {"hub", "mesh"}) {
        auto r = test::load_valid(multi(topology));
        for (const char* node : kMultiNodes) {
            plan::Desired d = plan::render_host(*r.fw, node);
            std::map<std::string, std::string> owner;
            for (const auto& [k, p] : d.state.interfaces.at("multi").peers)
                for (const auto& a : p.allowed_ips) {
                    const std::string& name = d.labels.peer_name("multi", k);
                    INFO(topology << " " << node << ": " << a.str() << " on " << name);
                    auto [it, fresh] = owner.emplace(a.str(), name);
                    CHECK((fresh || it->second == name));
                }
        }
    }
}
