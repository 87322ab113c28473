// plan/validate: cross references, address-plan collisions, overlaps, per-node clashes, forwards
// and HTTP routes, run as `wg-fleet check` runs them (parse -> plan_addresses -> validate).
// Lines and columns are counted by hand; colliding names were found with Python's hashlib.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "helpers.hpp"
#include "inputs/load.hpp"

using namespace wgf;
using config::Diagnostic;
using config::Severity;
using test::check;

namespace {

// The only error of this path, with this location and message.
void expect_error(const test::Loaded& l, const std::string& path, uint32_t line, uint32_t col, const std::string& message) {
    INFO("Diagnostics:\n" << l.text());
    auto e = l.at(path);
    REQUIRE(e.size() == 1);
    CHECK(e[0].loc.line == line);
    CHECK(e[0].loc.col == col);
    CHECK(e[0].message == message);
}

}  // namespace

TEST_CASE("a complete clan fleet validates without any diagnostic", "[validate]") {
    auto l = check(test::kClanFleetYaml);
    INFO(l->text());
    CHECK(l->diags.all().empty());
}

TEST_CASE("a node cannot be both controller and peer of one fleet", "[validate][roles]") {
    auto l = check(R"(fleets:
  mesh:
    controllers:
      server1: { endpoint: vpn1.example.com }
    peers:
      server1: {}
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.mesh.peers.server1", 6, 7,
                 "'server1' is both a controller and a peer of fleet 'mesh'; a node has one role per fleet");
}

TEST_CASE("with two controllers a peer must name its controller", "[validate][roles]") {
    auto l = check(R"(fleets:
  mesh:
    controllers:
      server1: { endpoint: vpn1.example.com }
      server2: { endpoint: vpn2.example.com }
    peers:
      laptop1: {}
      laptop2: { controller: server2 }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.mesh.peers.laptop1", 7, 7,
                 "the fleet has 2 controllers: say which one is this peer's with controller: (server1, server2)");
}

TEST_CASE("with one controller controller: is optional", "[validate][roles]") {
    auto l = check(R"(fleets:
  mesh:
    controllers:
      server1: { endpoint: vpn1.example.com }
    peers:
      laptop1: {}
)");
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
}

TEST_CASE("a peer naming an unknown controller", "[validate][roles]") {
    auto l = check(R"(fleets:
  mesh:
    controllers:
      server1: { endpoint: vpn1.example.com }
      server2: { endpoint: vpn2.example.com }
    peers:
      laptop2: { controller: server3 }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.mesh.peers.laptop2.controller", 7, 30,
                 "'server3' — unknown controller; controllers of this fleet: server1, server2");
}

// ---------------------------------------------------------------------------------------------
// Address-plan collisions

TEST_CASE("pinned controller ids that collide, with a free pin suggested", "[validate][collision]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      server1: { id: 0x3bf7 }
      server2: { id: 0x3bf7 }
)");
    CHECK(l->diags.errors() == 1);
    // 0x3bf7 in wg-test-one is controller1's /56 in the reference.
    expect_error(*l, "fleets.wg-test-one.controllers.server2.id", 5, 22,
                 "controllers 'server1' and 'server2' share the /56 id 0x3bf7 (fd51:19c1:3b:f700::/56) — pin a free one, e.g. id: 0x3bf8");
}

TEST_CASE("hash-derived controller ids that collide are found", "[validate][collision]") {
    // SHA-256("ctrl346") and SHA-256("ctrl374") both start cc 33.
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      ctrl346: {}
      ctrl374: {}
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.wg-test-one.controllers.ctrl374", 5, 7,
                 "controllers 'ctrl346' and 'ctrl374' share the /56 id 0xcc33 (fd51:19c1:cc:3300::/56) — pin a free one, e.g. id: 0xcc34");
}

TEST_CASE("a pin equal to another controller's hash id collides", "[validate][collision]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      controller1: {}
      server9: { id: 15351 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    auto e = l->at("fleets.wg-test-one.controllers.server9.id");
    REQUIRE(e.size() == 1);
    CHECK(test::contains(e[0].message, "'controller1' and 'server9'"));
    CHECK(test::contains(e[0].message, "0x3bf7"));
}

TEST_CASE("suggested controller pins are free and distinct from each other", "[validate][collision]") {
    auto l = check(R"(fleets:
  f:
    controllers:
      a: { id: 16 }
      b: { id: 16 }
      c: { id: 16 }
)");
    INFO(l->text());
    auto errs = l->errors();
    REQUIRE(errs.size() == 2);
    auto pin = [](const std::string& m) { return m.substr(m.rfind("id: ") + 4); };
    // Following both suggestions must not create a new collision.
    CHECK(pin(errs[0].message) != pin(errs[1].message));
    CHECK(pin(errs[0].message) != "0x0010");
    CHECK(pin(errs[1].message) != "0x0010");
}

TEST_CASE("pinned peer suffixes that collide", "[validate][collision]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com }
    peers:
      laptop1: { suffix: "1234:5678:9abc:def0" }
      laptop2: { suffix: "1234:5678:9abc:def0" }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.wg-test-one.peers.laptop2.suffix", 7, 26,
                 "peers 'laptop1' and 'laptop2' share the suffix 1234:5678:9abc:def0 — pin another, e.g. suffix: \"f78b:8920:6ed3:7e32\"");
}

TEST_CASE("a pinned suffix equal to another peer's hash suffix collides", "[validate][collision]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com }
    peers:
      peer1: {}
      zed: { suffix: "6987:50a0:9b93:4337" }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    auto e = l->at("fleets.wg-test-one.peers.zed.suffix");
    REQUIRE(e.size() == 1);
    CHECK(test::contains(e[0].message, "peers 'peer1' and 'zed' share the suffix 6987:50a0:9b93:4337"));
}

TEST_CASE("two suffixes with the same top 32 bits share a /96", "[validate][collision]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com }
    peers:
      laptop1: { suffix: "1234:5678:0:1" }
      laptop2: { suffix: "1234:5678:0:2" }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.wg-test-one.peers.laptop2.suffix", 7, 26,
                 "peers 'laptop1' and 'laptop2' share the /96 (top 32 bits of the suffix) 1234:5678:0:2 — pin another, e.g. suffix: "
                 "\"f78b:8920:6ed3:7e32\"");
}

TEST_CASE("hash-derived suffixes sharing a /96 are found", "[validate][collision]") {
    // SHA-256 of both names starts 9d9bc089: 9d9bc0890df002b5 and 9d9bc089c728da21.
    auto l = check(R"(fleets:
  f:
    controllers:
      c: { endpoint: c.example.com }
    peers:
      peer-66536: {}
      peer-118676: {}
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.f.peers.peer-66536", 6, 7,
                 "peers 'peer-118676' and 'peer-66536' share the /96 (top 32 bits of the suffix) 9d9b:c089:df0:2b5 — pin another, e.g. "
                 "suffix: \"3f34:6c1:a64f:fdfd\"");
}

TEST_CASE("subnet style: two peers on one address", "[validate][collision][subnet]") {
    auto l = check(R"(fleets:
  lab:
    ip6: fd00:1::1
    subnet: fd00:1::/64
    external_ip: 1.2.3.4
    public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=
    peers:
      a: { suffix: "0:0:0:10" }
      b: { suffix: 16 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    auto e = l->at("fleets.lab.peers.b.suffix");
    REQUIRE(e.size() == 1);
    CHECK(test::contains(e[0].message, "peers 'a' and 'b' share the address 0:0:0:10"));
}

TEST_CASE("subnet style: a peer on the server's address", "[validate][collision][subnet]") {
    auto l = check(R"(fleets:
  lab:
    ip6: fd00:1::1:1
    subnet: fd00:1::1:0/112
    external_ip: 1.2.3.4
    public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=
    peers:
      a: { suffix: "0:0:0:2" }
      b: { suffix: 65537 }
)");
    INFO(l->text());
    // Only the 16 host bits count in a /112: b's suffix 0x10001 places it on fd00:1::1:1, the server.
    const auto& fp = l->plan.fleets.at("lab");
    REQUIRE(fp.nodes.count("b"));
    REQUIRE(fp.nodes.at("b").addresses.size() == 1);
    CHECK(fp.nodes.at("b").addresses[0].addr.str() == "fd00:1::1:1");
    CHECK(l->diags.errors() == 1);
    CHECK(l->at("fleets.lab.peers.b.suffix").size() == 1);
}

// ---------------------------------------------------------------------------------------------
// Overlaps between fleets

TEST_CASE("overlapping subnets of two fleets", "[validate][overlap]") {
    auto l = check(R"(fleets:
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
  lab:
    ip6: fd00:a0a8:34d::1
    subnet: fd00:a0a8:34d::/48
    external_ip: 1.2.3.4
    port: 51821
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.southeast.subnet", 4, 13, "'fd00:a0a8:34d:2a00::/64' overlaps fd00:a0a8:34d::/48 of fleets.lab.subnet");
}

TEST_CASE("a clan /40 overlapping another fleet's subnet", "[validate][overlap]") {
    auto l = check(R"(fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com }
  lab:
    ip6: fd51:19c1:3b::1
    subnet: fd51:19c1:3b::/48
    external_ip: 1.2.3.4
    port: 51821
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.wg-test-one", 2, 3, "'fd51:19c1::/40' overlaps fd51:19c1:3b::/48 of fleets.lab.subnet");
}

TEST_CASE("overlapping IPv4 pools of two fleets", "[validate][overlap]") {
    auto l = check(R"(fleets:
  a:
    ipv4: 10.50.0.0/16
    controllers:
      ca: { endpoint: a.example.com }
  b:
    ipv4: 10.50.7.0/24
    port: 51821
    controllers:
      cb: { endpoint: b.example.com }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.b.ipv4", 7, 11, "'10.50.7.0/24' overlaps 10.50.0.0/16 of fleets.a.ipv4");
}

TEST_CASE("disjoint fleets do not overlap", "[validate][overlap]") {
    auto l = check(R"(fleets:
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
  northwest:
    ip6: fd00:a0a8:34d:2000::1
    subnet: fd00:a0a8:34d:2000::/64
    external_ip: 1.2.3.4
    port: 51821
  wg-test-one:
    port: 51822
    controllers:
      controller1: { endpoint: vpn1.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
)");
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
}

// ---------------------------------------------------------------------------------------------
// One node in two fleets

TEST_CASE("one node listening on the same port in two fleets", "[validate][node]") {
    auto l = check(R"(fleets:
  office:
    controllers:
      gw: { endpoint: gw.example.com }
  lab:
    controllers:
      gw: { endpoint: gw.example.com }
)");
    CHECK(l->diags.errors() == 1);
    // Fleets are visited in name order: lab, then office.
    expect_error(*l, "fleets.office.controllers.gw", 4, 7,
                 "node 'gw' listens on port 51820 in fleets 'lab' and 'office' — give one fleet another port:");
}

TEST_CASE("one node on the same interface in two fleets", "[validate][node]") {
    auto l = check(R"(fleets:
  office:
    interface: wg0
    controllers:
      gw: { endpoint: gw.example.com }
  lab:
    interface: wg0
    port: 51821
    controllers:
      gw: { endpoint: gw.example.com }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.office.controllers.gw", 5, 7,
                 "node 'gw' is in fleets 'lab' and 'office', both on interface 'wg0' — set interface: on one");
}

TEST_CASE("a peer of two hub fleets does not listen, so equal fleet ports are fine", "[validate][node]") {
    auto l = check(R"(fleets:
  office:
    controllers:
      gw1: { endpoint: gw1.example.com }
    peers:
      laptop: {}
  lab:
    ipv4: 10.9.0.0/24
    controllers:
      gw2: { endpoint: gw2.example.com }
    peers:
      laptop: {}
)");
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
}

TEST_CASE("a subnet-style server on the same port as its clan controller role", "[validate][node]") {
    auto l = check(R"(fleets:
  south:
    ip6: fd00:1::1
    subnet: fd00:1::/64
    external_ip: 1.2.3.4
    server: gw
  mesh:
    controllers:
      gw: { endpoint: gw.example.com }
)");
    CHECK(l->diags.errors() == 1);
    auto e = l->at("fleets.south");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message == "node 'gw' listens on port 51820 in fleets 'mesh' and 'south' — give one fleet another port:");
}

// ---------------------------------------------------------------------------------------------
// Members

TEST_CASE("members without a public key are pending warnings, not errors", "[validate][pending]") {
    auto l = check(R"(fleets:
  mesh:
    controllers:
      server1: { endpoint: vpn1.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
    peers:
      laptop1:
      laptop2: { public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0= }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
    CHECK(l->diags.warnings() == 1);
    auto w = l->at("fleets.mesh.peers.laptop1", Severity::warning);
    REQUIRE(w.size() == 1);
    CHECK(w[0].loc.line == 6);
    CHECK(w[0].loc.col == 7);
    CHECK(w[0].message == "no public key yet: pending (it joins once its key is known from public_key: or keys_dir)");
}

TEST_CASE("members that can never connect (no endpoint on either side) are warned about, one warning per member", "[validate][endpoints]") {
    auto l = check(R"(fleets:
  m:
    topology: mesh
    controllers:
      c1: { endpoint: c1.example.com }
    peers:
      a: { endpoint: a.example.com }
      b: {}
      c: {}
      d: {}
      e: {}
      f: {}
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
    // a and c1 have endpoints: every pair with one of them is fine.
    CHECK(l->at("fleets.m.peers.a", Severity::warning).size() == 1);  // its missing public key only
    CHECK(l->at("fleets.m.controllers.c1", Severity::warning).size() == 1);
    auto b = l->at("fleets.m.peers.b", Severity::warning);
    REQUIRE(b.size() == 2);
    const Diagnostic& w = b[0].message.rfind("no endpoint", 0) == 0 ? b[0] : b[1];
    CHECK(w.loc.line == 8);
    CHECK(w.loc.col == 7);
    CHECK(w.message ==
          "no endpoint, and neither have 4 members it connects to directly (c, d, e and 1 more): neither side of these "
          "pairs can start a session (give one of each pair an endpoint)");
    auto f = l->at("fleets.m.peers.f", Severity::warning);
    REQUIRE(f.size() == 2);
    CHECK((f[0].message + f[1].message).find("(b, c, d and 1 more)") != std::string::npos);
}

TEST_CASE("unconnectable pairs: two endpointless controllers in a hub, a hub's peers never dial each other", "[validate][endpoints]") {
    auto l = check(R"(fleets:
  h:
    controllers:
      c1: { public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
      c2: { public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0= }
)");
    INFO(l->text());
    auto c1 = l->at("fleets.h.controllers.c1", Severity::warning);
    REQUIRE(c1.size() == 1);
    CHECK(c1[0].message ==
          "no endpoint, and neither has c2, which it connects to directly: neither side can start a session "
          "(give one of the two an endpoint)");
    CHECK(l->at("fleets.h.controllers.c2", Severity::warning).size() == 1);

    // Hub peers without endpoints are fine: they only dial their controllers.
    auto hub = check(R"(fleets:
  h:
    controllers:
      c1: { endpoint: c1.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
    peers:
      a: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
      b: { public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY= }
)");
    INFO(hub->text());
    CHECK(hub->diags.warnings() == 0);
}

TEST_CASE("unconnectable pairs in a large mesh: one line per member, not one per pair", "[validate][endpoints]") {
    std::string yaml = "fleets:\n  big:\n    topology: mesh\n    controllers:\n      c: { endpoint: c.example.com }\n    peers:\n";
    for (int i = 0; i < 300; ++i) yaml += "      p" + std::to_string(1000 + i) + ": {}\n";
    auto l = check(yaml);
    size_t unreachable = 0;
    for (const auto& d : l->warnings())
        if (d.message.rfind("no endpoint, and neither", 0) == 0) {
            ++unreachable;
            CHECK(d.message.find("299 members") != std::string::npos);
            CHECK(d.message.find("and 296 more") != std::string::npos);
        }
    CHECK(unreachable == 300);
}

TEST_CASE("subnet style: the server's missing key and external_ip are warnings", "[validate][pending][subnet]") {
    auto l = check(R"(fleets:
  lab:
    ip6: fd00:1::1
    subnet: fd00:1::/64
    peers:
      a: { public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
    auto w = l->at("fleets.lab", Severity::warning);
    CHECK(w.size() == 2);
}

TEST_CASE("ip6 outside the subnet", "[validate][subnet]") {
    auto l = check(R"(fleets:
  southeast:
    ip6: fd00:a0a8:34d:2b00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.southeast.ip6", 3, 10, "'fd00:a0a8:34d:2b00::1' is outside the fleet's subnet fd00:a0a8:34d:2a00::/64");
}

TEST_CASE("subnet style: the server listed as a peer, and controller: on a peer", "[validate][subnet]") {
    auto l = check(R"(fleets:
  lab:
    ip6: fd00:1::1
    subnet: fd00:1::/64
    external_ip: 1.2.3.4
    peers:
      server: {}
      a: { controller: server }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 2);
    CHECK(l->at("fleets.lab.peers.server").size() == 1);
    CHECK(l->at("fleets.lab.peers.a.controller").size() == 1);
}

TEST_CASE("routes: overlapping the fleet, default route, claimed twice", "[validate][routes]") {
    auto l = check(R"(fleets:
  wg-test-one:
    ipv4: 10.50.0.0/24
    controllers:
      controller1: { endpoint: vpn1.example.com }
    peers:
      a: { routes: [fd51:19c1:3b::/48] }
      b: { routes: [0.0.0.0/0, "::/0"] }
      c: { routes: [10.50.0.128/25] }
      d: { routes: [192.168.1.0/24] }
      e: { routes: [192.168.1.0/24] }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 5);
    auto a = l->at("fleets.wg-test-one.peers.a.routes[0]");
    REQUIRE(a.size() == 1);
    CHECK(a[0].message == "'fd51:19c1:3b::/48' overlaps the addresses of fleet 'wg-test-one' itself");
    // A default route overlaps the fleet's addresses too, but gets the one error that says why.
    for (const char* path : {"fleets.wg-test-one.peers.b.routes[0]", "fleets.wg-test-one.peers.b.routes[1]"}) {
        auto b = l->at(path);
        REQUIRE(b.size() == 1);
        CHECK_THAT(b[0].message, Catch::Contains("is a default route"));
    }
    CHECK(l->at("fleets.wg-test-one.peers.c.routes[0]").size() == 1);
    auto e = l->at("fleets.wg-test-one.peers.e.routes[0]");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message == "'192.168.1.0/24' is already routed by fleets.wg-test-one.peers.d.routes[0]");
}

TEST_CASE("member ipv4: outside the pool, no pool, network/broadcast, taken twice", "[validate][ipv4]") {
    auto l = check(R"(fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, ipv4: 10.50.0.1 }
    peers:
      a: { ipv4: 10.50.1.5 }
      b: { ipv4: 10.50.0.255 }
      c: { ipv4: 10.50.0.1 }
  other:
    port: 51821
    controllers:
      o1: { endpoint: o.example.com, ipv4: 10.60.0.1 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 4);
    auto a = l->at("fleets.edge.peers.a.ipv4");
    REQUIRE(a.size() == 1);
    CHECK(a[0].message == "'10.50.1.5' is outside the fleet's ipv4 10.50.0.0/24");
    auto b = l->at("fleets.edge.peers.b.ipv4");
    REQUIRE(b.size() == 1);
    CHECK(b[0].message == "'10.50.0.255' is the network or broadcast address of 10.50.0.0/24");
    auto c = l->at("fleets.edge.peers.c.ipv4");
    REQUIRE(c.size() == 1);
    CHECK(c[0].message == "'10.50.0.1' is also the address of fleets.edge.controllers.edge1");
    auto o = l->at("fleets.other.controllers.o1.ipv4");
    REQUIRE(o.size() == 1);
    CHECK(o[0].message == "'10.60.0.1' — the fleet has no ipv4: subnet to place it in");
}

TEST_CASE("an exhausted IPv4 pool is an error", "[validate][ipv4]") {
    auto l = check(R"(fleets:
  small:
    ipv4: 10.60.0.0/30
    controllers:
      a: { endpoint: a.example.com }
    peers:
      b: {}
      c: {}
)");
    INFO(l->text());
    auto e = l->at("fleets.small.ipv4");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message == "'10.60.0.0/30' has no free address left for every member");
}

// ---------------------------------------------------------------------------------------------
// Forwards

namespace {
const char* kTwoFleets = R"(fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10 }
    peers:
      vm-123: { ipv4: 10.50.0.123 }
  lab:
    port: 51821
    controllers:
      lab1: { endpoint: lab.example.com }
    peers:
      vm-9: {}
)";
}

TEST_CASE("forwards: unknown node and unknown target", "[validate][forwards]") {
    auto l = check(std::string(kTwoFleets) + R"(forwards:
  - { name: a, node: nosuch, port: 2201, to: vm-123 }
  - { name: b, node: edge1, port: 2202, to: vm-125 }
)");
    expect_error(*l, "forwards[0].node", 15, 22, "'nosuch' — unknown node; no fleet has it");
    expect_error(*l, "forwards[1].to", 16, 45, "'vm-125' — unknown node; no fleet has it; did you mean 'vm-123'?");
    CHECK(l->diags.errors() == 2);
}

TEST_CASE("forwards: node and target share no fleet", "[validate][forwards]") {
    auto l = check(std::string(kTwoFleets) + R"(forwards:
  - { name: a, node: edge1, port: 2201, to: vm-9 }
)");
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "forwards[0].to", 15, 45, "'vm-9' shares no fleet with 'edge1'");
}

TEST_CASE("forwards: duplicate names and duplicate public ports", "[validate][forwards]") {
    auto l = check(std::string(kTwoFleets) + R"(forwards:
  - { name: ssh, node: edge1, port: 2201, to: vm-123, to_port: 22 }
  - { name: ssh, node: edge1, port: 2202, to: vm-123, to_port: 22 }
  - { name: ssh2, node: edge1, port: 2201, to: vm-123, to_port: 23 }
  - { name: ssh3, node: edge1, port: 2201, proto: udp, to: vm-123 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 2);
    expect_error(*l, "forwards[1].name", 16, 13, "'ssh' — the name is already used by forwards[0]");
    expect_error(*l, "forwards[2].port", 17, 38, "'2201' — tcp port 2201 on 'edge1' is already forwarded by forwards[0]");
}

TEST_CASE("forwards: fleet: must be shared, and is required when several are", "[validate][forwards]") {
    auto l = check(R"(fleets:
  a:
    controllers:
      gw: { endpoint: gw.example.com }
    peers:
      vm: {}
  b:
    port: 51821
    controllers:
      gw: { endpoint: gw.example.com }
    peers:
      vm: {}
forwards:
  - { name: one, node: gw, port: 80, to: vm }
  - { name: two, node: gw, port: 81, to: vm, fleet: c }
  - { name: three, node: gw, port: 82, to: vm, fleet: b }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 2);
    expect_error(*l, "forwards[0]", 14, 5, "'gw' and 'vm' share fleets a, b: say which with fleet:");
    expect_error(*l, "forwards[1].fleet", 15, 53, "'c' — 'gw' and 'vm' are not both in this fleet");
}

TEST_CASE("forwards: the gateway's WireGuard port cannot be forwarded away", "[validate][forwards]") {
    // edge1 listens on UDP 51820 for fleet edge; DNATing that port would cut the tunnel.
    auto l = check(std::string(kTwoFleets) + R"(forwards:
  - { name: oops, node: edge1, proto: udp, port: 51820, to: vm-123 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    CHECK(l->at("forwards[0].port").size() == 1);
}

TEST_CASE("forwards: a target without IPv4 is a warning", "[validate][forwards]") {
    auto l = check(R"(fleets:
  edge:
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
    peers:
      vm-1: { public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0= }
forwards:
  - { name: a, node: edge1, port: 2201, to: vm-1 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
    auto w = l->at("forwards[0].to", Severity::warning);
    REQUIRE(w.size() == 1);
    CHECK(w[0].message == "'vm-1' has no IPv4 address in fleet 'edge': only IPv6 clients reach this forward");
}

namespace {
// edge1 reaches fleet edge (10.50.0.0/24, fda1:cb10::/40, vm-123's 192.0.2.0/24) and fleet
// lab; it routes 203.0.113.0/24 itself.
const char* kExplicit = R"(fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, ipv4: 10.50.0.1, routes: [203.0.113.0/24] }
    peers:
      vm-123: { ipv4: 10.50.0.123, routes: [192.0.2.0/24] }
  lab:
    port: 51821
    controllers:
      lab1: { endpoint: lab.example.com }
    peers:
      edge1: { routes: [198.18.0.0/24] }
      vm-9: { routes: [192.0.2.0/25] }
)";
}  // namespace

TEST_CASE("forwards: to an explicit address in a fleet's addresses or a member's routes", "[validate][forwards]") {
    auto l = check(std::string(kExplicit) + R"(forwards:
  - { name: a, node: edge1, port: 2201, to: 10.50.0.12 }
  - { name: b, node: edge1, port: 2202, to: 192.0.2.200 }
  - { name: c, node: edge1, port: 2203, to: "fda1:cb10:b4:ba00::12" }
  - { name: d, node: edge1, proto: udp, port: 53, to: 10.50.0.123, to_port: 5353 }
  - { name: e, node: edge1, port: 2204, to: 192.0.2.5, fleet: edge }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
    REQUIRE(l->cfg().forwards.size() == 5);
    CHECK(l->cfg().forwards[0].to_addr->str() == "10.50.0.12");
    CHECK(l->cfg().forwards[2].to_addr->is_v6());
    CHECK_FALSE(l->cfg().forwards[3].to_addr->is_v6());
}

TEST_CASE("forwards: an explicit address the node does not reach over its fleets", "[validate][forwards]") {
    auto l = check(std::string(kExplicit) + R"(forwards:
  - { name: a, node: edge1, port: 2201, to: 10.60.0.5 }
  - { name: b, node: edge1, port: 2202, to: "2001:db8::5" }
  - { name: c, node: edge1, port: 2203, to: 10.50.0.1 }
  - { name: d, node: edge1, port: 2204, to: 203.0.113.9 }
  - { name: e, node: edge1, port: 2205, to: 192.0.2.5 }
  - { name: f, node: edge1, port: 2206, to: 198.18.0.1, fleet: edge }
  - { name: g, node: edge1, port: 2207, to: 10.50.0.5, fleet: nosuch }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 7);
    expect_error(*l, "forwards[0].to", 16, 45,
                 "'10.60.0.5' — not reachable from 'edge1' over its fleets (reachable: 10.50.0.0/24, 192.0.2.0/24 (routes of vm-123), "
                 "192.0.2.0/25 (routes of vm-9))");
    expect_error(*l, "forwards[1].to", 17, 45,
                 "'2001:db8::5' — not reachable from 'edge1' over its fleets (reachable: fda1:cb10::/40, fda5:1146::/40)");
    expect_error(*l, "forwards[2].to", 18, 45,
                 "'10.50.0.1' is an address of 'edge1' itself (fleet 'edge'): a forward goes to another machine");
    expect_error(*l, "forwards[3].to", 19, 45,
                 "'203.0.113.9' lies in 203.0.113.0/24, which 'edge1' itself routes (its routes: in fleet 'edge'): it is not reached "
                 "over a fleet");
    expect_error(*l, "forwards[4]", 20, 5, "'192.0.2.5' is reached from 'edge1' over fleets edge, lab: say which with fleet:");
    expect_error(*l, "forwards[5].to", 21, 45,
                 "'198.18.0.1' — not reachable from 'edge1' over fleet 'edge' (reachable: 10.50.0.0/24, 192.0.2.0/24 (routes of "
                 "vm-123))");
    expect_error(*l, "forwards[6].fleet", 22, 63, "'nosuch' — 'edge1' is not in this fleet");
}

TEST_CASE("forwards: a target that is neither a node name nor one address", "[validate][forwards]") {
    auto l = check(std::string(kExplicit) + R"(forwards:
  - { name: a, node: edge1, port: 2201, to: 10.50.0.0/24 }
  - { name: b, node: edge1, port: 2202, to: 10.50.0.300 }
  - { name: c, node: edge1, port: 2203, to: vm-132 }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 3);
    expect_error(*l, "forwards[0].to", 16, 45, "'10.50.0.0/24' — a forward goes to one address, not a prefix");
    expect_error(*l, "forwards[1].to", 17, 45, "'10.50.0.300' — not a node name nor an IP address");
    expect_error(*l, "forwards[2].to", 18, 45, "'vm-132' — unknown node; no fleet has it; did you mean 'vm-123'?");
}

TEST_CASE("forwards: one port may go to an IPv4 and an IPv6 address, not to two of one family", "[validate][forwards]") {
    auto l = check(std::string(kExplicit) + R"(forwards:
  - { name: v4, node: edge1, port: 2201, to: 10.50.0.12 }
  - { name: v6, node: edge1, port: 2201, to: "fda1:cb10:b4:ba00::12" }
  - { name: again, node: edge1, port: 2201, to: 192.0.2.9, fleet: edge }
  - { name: member, node: edge1, port: 2202, to: vm-123, fleet: edge }
  - { name: member6, node: edge1, port: 2202, to: "fda1:cb10:b4:ba00::12" }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 2);
    expect_error(*l, "forwards[2].port", 18, 39, "'2201' — tcp port 2201 on 'edge1' is already forwarded by forwards[0]");
    // A member forward takes both families of its port (vm-123 has an IPv4 address).
    expect_error(*l, "forwards[4].port", 20, 41, "'2202' — tcp port 2202 on 'edge1' is already forwarded by forwards[3]");
}

// ---------------------------------------------------------------------------------------------
// HTTP routes

TEST_CASE("http_routes: malformed URLs", "[validate][http]") {
    const char* bad[] = {"ftp://vm-123",    "vm-123:8080",       "http://",          "http://vm-123:0", "http://vm-123:99999",
                         "http://[fd00::1", "http://vm-123:80x", "http://bad host/", "http:/vm-123",    "http://:80/"};
    for (const char* url : bad) {
        INFO(url);
        auto l = check(std::string(kTwoFleets) + "http_routes:\n  - { name: r, node: edge1, host: a.example.com, to: \"" + url + "\" }\n");
        INFO(l->text());
        CHECK(l->diags.errors() == 1);
        auto e = l->at("http_routes[0].to");
        REQUIRE(e.size() == 1);
        CHECK(e[0].loc.line == 15);
        CHECK(e[0].loc.col == 54);
        CHECK(e[0].message == "'" + std::string(url) + "' — expected a URL like http://NODE:PORT/ (scheme http or https)");
    }
}

TEST_CASE("http_server: caddy: Traefik's settings and a target's path are errors, and the route directory defaults to Caddy's",
          "[validate][http][caddy]") {
    auto ok = check(std::string(kTwoFleets) + R"(http_server: caddy
http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://vm-123:8080", entrypoint: web }
  - { name: r2, node: edge1, host: b.example.com, to: "https://vm-123/" }
)");
    INFO(ok->text());
    CHECK(ok->diags.errors() == 0);
    CHECK(ok->cfg().http_routes_dir == "/etc/caddy/wg-fleet");
    CHECK(ok->cfg().caddy_reload == "caddy reload --config /etc/caddy/Caddyfile");
    auto dir = check(std::string(kTwoFleets) +
                     "http_server: caddy\nhttp_routes_dir: /srv/caddy/routes\ncaddy_reload: systemctl reload caddy\n");
    CHECK(dir->cfg().http_routes_dir == "/srv/caddy/routes");
    CHECK(dir->cfg().caddy_reload == "systemctl reload caddy");

    auto bad = check(std::string(kTwoFleets) + R"(http_server: caddy
http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://vm-123:8080", entrypoint: internal }
  - { name: r2, node: edge1, host: b.example.com, to: "http://vm-123/app", certresolver: le }
)");
    INFO(bad->text());
    CHECK(bad->diags.errors() == 3);
    auto e = bad->at("http_routes[0].entrypoint");
    REQUIRE(e.size() == 1);
    CHECK(
        e[0].message ==
        "'internal' — with http_server: caddy a route is served as web (http://HOST) or websecure (https://HOST, with Caddy's automatic HTTPS)");
    e = bad->at("http_routes[1].certresolver");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message == "'le' — a Traefik setting; with http_server: caddy, Caddy's own configuration chooses the certificate issuer");
    e = bad->at("http_routes[1].to");
    REQUIRE(e.size() == 1);
    CHECK(e[0].message == "'http://vm-123/app' — with http_server: caddy the target is an upstream address, without a path");

    auto server = check(std::string(kTwoFleets) + "http_server: nginx\n");
    auto es = server->at("http_server");
    REQUIRE(es.size() == 1);
    CHECK(es[0].message == "'nginx' — expected traefik or caddy");
}

TEST_CASE("http_routes: good URLs, unknown targets and duplicate names", "[validate][http]") {
    auto ok = check(std::string(kTwoFleets) + R"(http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://vm-123:8080" }
  - { name: r2, node: edge1, host: b.example.com, to: "https://vm-123/app" }
  - { name: r3, node: edge1, host: c.example.com, to: "http://10.50.0.123:3000/api" }
  - { name: r4, node: edge1, host: d.example.com, to: "http://[fd00::1]:8080" }
)");
    INFO(ok->text());
    CHECK(ok->diags.errors() == 0);

    auto bad = check(std::string(kTwoFleets) + R"(http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://ghost:8080" }
  - { name: r1, node: edge1, host: b.example.com, to: "http://vm-9:8080" }
  - { name: r3, node: nobody, host: c.example.com, to: "http://10.50.0.123" }
)");
    INFO(bad->text());
    CHECK(bad->diags.errors() == 4);
    expect_error(*bad, "http_routes[0].to", 15, 55, "'ghost' — unknown node; no fleet has it");
    expect_error(*bad, "http_routes[1].name", 16, 13, "'r1' — the name is already used by http_routes[0]");
    expect_error(*bad, "http_routes[1].to", 16, 55, "'vm-9' shares no fleet with 'edge1'");
    expect_error(*bad, "http_routes[2].node", 17, 23, "'nobody' — unknown node; no fleet has it");
}

TEST_CASE("parse_url splits scheme, host, port and path", "[validate][http]") {
    auto u = plan::parse_url("http://vm-123:8080/a/b");
    REQUIRE(u);
    CHECK(u->scheme == "http");
    CHECK(u->host == "vm-123");
    CHECK(u->port == 8080);
    CHECK(u->path == "/a/b");
    auto v = plan::parse_url("https://[fd00::1]/x");
    REQUIRE(v);
    CHECK(v->scheme == "https");
    CHECK(v->host == "fd00::1");
    CHECK(v->port == 0);
    CHECK(v->path == "/x");
}

TEST_CASE("routes: a prefix announced in two fleets of one node is an error at the second announcement", "[validate][routes]") {
    // hub is in both fleets: it would route 10.20.0.0/16 over `one` and over `two`, and the
    // kernel refuses the second route, so every apply on hub would fail.
    auto l = check(R"(fleets:
  one:
    controllers:
      hub: { endpoint: vpn1.example.com }
    peers:
      a: { routes: [10.20.0.0/16] }
  two:
    controllers:
      hub: { endpoint: vpn1.example.com }
    port: 51821
    peers:
      b: { routes: [10.20.0.0/16, 10.30.0.0/16] }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 1);
    expect_error(*l, "fleets.two.peers.b.routes[0]", 12, 21,
                 "'10.20.0.0/16' is also announced in fleet 'one' by fleets.one.peers.a.routes[0]; node 'hub' is in both fleets and "
                 "would route it over two interfaces — announce it in one fleet only");
}

TEST_CASE("routes: the same prefix in two fleets that share no routing node is fine", "[validate][routes]") {
    // The announcer itself is in both fleets: it routes neither (the prefix is behind it).
    auto l = check(R"(fleets:
  one:
    controllers:
      hub1: { endpoint: vpn1.example.com }
    peers:
      gw: { routes: [10.20.0.0/16] }
  two:
    controllers:
      hub2: { endpoint: vpn2.example.com }
    port: 51821
    peers:
      gw: { routes: [10.20.0.0/16] }
)");
    INFO(l->text());
    CHECK(l->diags.errors() == 0);
}

TEST_CASE("managed files: check rejects the key file, paths inside state_dir and two paths for one file", "[validate][files]") {
    auto key = check(std::string(kTwoFleets) + "state_dir: /var/lib/wgf\nhosts_file: /var/lib//wgf/./edge.key\n");
    INFO(key->text());
    expect_error(*key, "hosts_file", 15, 13,
                 "'/var/lib//wgf/./edge.key' — that is the private key file of fleet 'edge'; choose a path outside state_dir");

    auto inside = check(std::string(kTwoFleets) + "state_dir: /var/lib/wgf/\nhosts_file: /var/lib/other/../wgf/hosts\n");
    INFO(inside->text());
    expect_error(*inside, "hosts_file", 15, 13,
                 "'/var/lib/other/../wgf/hosts' — inside state_dir /var/lib/wgf, where wg-fleet keeps private keys and state; choose "
                 "a path outside it");

    auto routes = check(std::string(kTwoFleets) + R"(state_dir: /srv/wgf
http_routes_dir: /srv/wgf/traefik
http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://vm-123:8080" }
)");
    INFO(routes->text());
    expect_error(*routes, "http_routes_dir", 15, 18,
                 "'/srv/wgf/traefik' — inside state_dir /srv/wgf, where wg-fleet keeps private keys and state; choose a directory "
                 "outside it");

    auto same = check(std::string(kTwoFleets) + R"(hosts_file: /etc/traefik//x/../r1.yml
http_routes_dir: /etc/traefik/
http_routes:
  - { name: r1, node: edge1, host: a.example.com, to: "http://vm-123:8080" }
)");
    INFO(same->text());
    expect_error(*same, "http_routes[0].name", 17, 13,
                 "'r1' — its route file /etc/traefik/r1.yml is also hosts_file; every managed file needs a path of its own");

    auto keys = check(std::string(kTwoFleets) + "state_dir: /var/lib/wgf\nkeys_dir: /var/lib/wgf/keys\n");
    INFO(keys->text());
    expect_error(*keys, "keys_dir", 15, 11,
                 "'/var/lib/wgf/keys' — inside state_dir /var/lib/wgf: published keys are read from there, and nothing inside "
                 "state_dir is read as a public key");
}

TEST_CASE("pending members: one summary line by default, each with -v, none in the sandbox", "[validate][pending]") {
    std::string yaml =
        "fleets:\n  other:\n    controllers:\n      hub2: { public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0= }\n"
        "    peers:\n      x: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }\n"
        "  mesh:\n    controllers:\n      hub: { endpoint: 192.0.2.1 }\n    peers:\n";
    for (int i = 0; i < 10; ++i) yaml += fmt::format("      p{}: {{}}\n", i);
    auto l = check(yaml, "f.yaml");
    INFO(l->text());
    REQUIRE(l->diags.errors() == 0);
    size_t pending = 0;
    for (const auto& d : l->diags.all()) pending += d.pending;
    CHECK(pending == 11);  // the hub and p0..p9; hub2 has its key
    const size_t others = l->diags.warnings() - pending;
    REQUIRE(others == 1);  // hub2 has no endpoint
    const std::string each = config::render_all(l->diags, l->sources, true, config::Pending::each);
    const std::string summary = config::render_all(l->diags, l->sources, true, config::Pending::summary);
    const std::string none = config::render_all(l->diags, l->sources, true, config::Pending::none);
    auto count = [](const std::string& s, std::string_view what) {
        size_t n = 0;
        for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
        return n;
    };
    CHECK(count(each, "no public key yet: pending") == 11);
    CHECK(count(summary, "no public key yet: pending") == 0);
    CHECK(count(summary,
                "f.yaml: warning: 11 members without a public key yet, pending until it is known (public_key: or keys_dir): "
                "fleets.mesh.controllers.hub, fleets.mesh.peers.p0, fleets.mesh.peers.p1, fleets.mesh.peers.p2, fleets.mesh.peers.p3, "
                "fleets.mesh.peers.p4, fleets.mesh.peers.p5, fleets.mesh.peers.p6 and 3 more (-v shows each)\n") == 1);
    CHECK(none.find("pending") == std::string::npos);
    // Every other warning is shown in each mode, and nothing is counted as "not shown".
    for (const auto* s : {&each, &summary, &none}) {
        CHECK(count(*s, ": warning: fleets.") == (s == &each ? pending + others : others));
        CHECK(s->find("more warning") == std::string::npos);
    }
    CHECK(config::render_all(l->diags, l->sources, false, config::Pending::summary).find("warning") == std::string::npos);
}

namespace {

// A fleet file in a directory of its own, loaded as every command loads it (inputs::load).
struct LoadedFile {
    std::string dir;
    std::unique_ptr<inputs::Loaded> l;
    explicit LoadedFile(const std::string& yaml) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "wgf-validate-test.XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()));
        dir = tmpl;
        std::ofstream(dir + "/fleet.yaml") << yaml;
        l = inputs::load({.config = dir + "/fleet.yaml",
                          .dropin_dir = dir + "/fleet.d",
                          .state_dir = dir + "/state",
                          .keys_only_from = std::nullopt,
                          .files_root = std::nullopt});
    }
    ~LoadedFile() { std::filesystem::remove_all(dir); }
    LoadedFile(const LoadedFile&) = delete;
    LoadedFile& operator=(const LoadedFile&) = delete;
};

// One diagnostic the test expects: its YAML path, the bad value as the file has it (its first
// occurrence at or after line `from` gives the line and column), and a part of the message.
struct Expected {
    std::string path;
    std::string value;
    uint32_t from;
    std::string says;
};

// Line and column (1-based) of `needle` in `text`, first at or after line `from`.
std::pair<uint32_t, uint32_t> position(const std::string& text, const std::string& needle, uint32_t from) {
    uint32_t line = 1;
    size_t start = 0;
    while (line < from) start = text.find('\n', start) + 1, ++line;
    const size_t at = text.find(needle, start);
    REQUIRE(at != std::string::npos);
    for (size_t i = start; i < at; ++i)
        if (text[i] == '\n') ++line, start = i + 1;
    return {line, static_cast<uint32_t>(at - start + 1)};
}

void expect_exactly(const inputs::Loaded& l, const std::string& yaml, const std::vector<Expected>& want) {
    const std::string text = config::render_all(l.diags, l.sources);
    INFO("Diagnostics:\n" << text);
    CHECK(l.fleet == nullptr);
    CHECK(l.diags.warnings() == 0);
    REQUIRE(l.diags.errors() == want.size());
    for (const auto& w : want) {
        INFO(w.path);
        std::vector<Diagnostic> at;
        for (const auto& d : l.diags.all())
            if (d.path == w.path) at.push_back(d);
        REQUIRE(at.size() == 1);  // each once
        const auto [line, col] = position(yaml, w.value, w.from);
        CHECK(l.sources.name(at[0].loc.file).ends_with("/fleet.yaml"));
        CHECK(at[0].loc.line == line);
        CHECK(at[0].loc.col == col);
        CHECK(at[0].message.find(w.says) != std::string::npos);
        // file:line:col, the path and the message, as check prints them
        CHECK(text.find(fmt::format("/fleet.yaml:{}:{}: error: {}: {}", line, col, w.path, at[0].message)) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("structural and cross-reference errors are reported in one run, each once", "[validate][one-pass]") {
    const std::string yaml = R"(prune_timout: 30m
fleets:
  mesh:
    port: "abc"
    topology: star
    controllers:
      server1:
        endpoint: vpn1.example.com:99999
        public_key: OL121+0vN8VaZ3EFjG6DpiBCxUwIuH2silib6EJvsh0=
      server2:
        endpoint: vpn2.example.com
        public_key: nope
      server4: 5
    peers:
      laptop1:
        controller: server1
        routes: [10.20.0.0/33]
      laptop2:
        controller: server3
      laptop3:
        controller: server4
      server1:
        controller: server2
  lab:
    ipv4: 10.9.0.0/24
    controllers:
      gw:
        endpoint: gw.example.com
        ipv4: 10.9.0.300
    peers:
      pc1: {controller: gw, ipv4: 10.9.0.7}
      pc2: {controller: gw, ipv4: 10.9.0.7}
forwards:
  - {name: ssh, node: gw, port: 22, to: vm-125}
  - {name: web, node: gw, proto: sctp, port: 80, to: pc1}
)";
    LoadedFile f(yaml);
    // Structural: the parse's. Cross references: validation's, run although the parse failed.
    // Nothing about what stands in for a broken value: laptop3 names server4, which is not a
    // map, the members without a key are not "pending" while the file has errors, and the
    // mesh's topology and port are unknown, so no endpoint or port clash is guessed at.
    expect_exactly(*f.l, yaml,
                   {
                       {"prune_timout", "prune_timout", 1, "unknown key 'prune_timout' — did you mean 'prune_timeout'?"},
                       {"fleets.mesh.port", "\"abc\"", 1, "'abc' — expected an integer 1..65535"},
                       {"fleets.mesh.topology", "star", 1, "'star' — topology is hub or mesh"},
                       {"fleets.mesh.controllers.server1.endpoint", "vpn1.example.com:99999", 1, "port must be 1..65535"},
                       {"fleets.mesh.controllers.server2.public_key", "nope", 1, "'nope' — not a WireGuard key"},
                       {"fleets.mesh.controllers.server4", "5", 13, "expected a map, got a scalar '5'"},
                       {"fleets.mesh.peers.laptop1.routes[0]", "10.20.0.0/33", 1, "'10.20.0.0/33' — not a CIDR"},
                       {"fleets.mesh.peers.laptop2.controller", "server3", 1, "'server3' — unknown controller"},
                       {"fleets.mesh.peers.server1", "server1", 22, "'server1' is both a controller and a peer of fleet 'mesh'"},
                       {"fleets.lab.controllers.gw.ipv4", "10.9.0.300", 1, "'10.9.0.300' — not an IPv4 address"},
                       {"fleets.lab.peers.pc2.ipv4", "10.9.0.7", 32, "'10.9.0.7' is also the address of fleets.lab.peers.pc1"},
                       {"forwards[0].to", "vm-125", 1, "'vm-125' — unknown node; no fleet has it"},
                       {"forwards[1].proto", "sctp", 1, "'sctp' — proto is tcp or udp"},
                   });
}

TEST_CASE("what depends on a part the parse could not read is not checked", "[validate][one-pass]") {
    // Fleet b mixes the styles and is left out; hub1, in a and b, would listen on the default
    // port in both, and p9 is only in b; a forward of hub1's WireGuard port can only be judged
    // with a's port known; c's subnet is unreadable, so c1's route cannot overlap it; forwards[1]
    // is no map, and forwards[2] keeps its index. A misspelt key is not also missing (e's
    // subnet, the route's node), and e's pool is not judged against an ipv4 that did not parse.
    const std::string yaml = R"(fleets:
  a:
    port: 70000
    controllers:
      hub1: {endpoint: hub1.example.com, public_key: OL121+0vN8VaZ3EFjG6DpiBCxUwIuH2silib6EJvsh0=}
    peers:
      p1: {controller: hub1}
  b:
    ip6: fd00::1
    controllers:
      hub1: {endpoint: hub1.example.com}
    peers:
      p9: {controller: hub1}
  c:
    ip6: fd10::1
    subnet: fd10::/200
    server: srv
    external_ip: 192.0.2.1
    peers:
      c1: {routes: ["fd10:0:0:1::/64"]}
  e:
    ip6: fd20::1
    subnetx: fd20::/64
    ipv4: 10.99.0.0/33
    server: srv2
    external_ip: 192.0.2.2
    headscale: {url: "https://hs.example.com", api_key_file: /etc/hs.key, pool: 10.99.0.0/24}
http_routes:
  - {name: r1, nodex: srv2, host: app.example.com, to: "http://c1:8080/"}
forwards:
  - {name: f0, node: hub1, proto: udp, port: 51820, to: p9}
  - 5
  - {name: f2, node: srv, port: 22, to: c9}
)";
    LoadedFile f(yaml);
    expect_exactly(*f.l, yaml,
                   {
                       {"fleets.a.port", "70000", 1, "'70000' — must be 1..65535"},
                       {"fleets.b.ip6", "ip6", 1, "a fleet is either clan-style (controllers:) or subnet-style"},
                       {"fleets.c.subnet", "fd10::/200", 1, "'fd10::/200' — not a CIDR"},
                       {"fleets.e.subnetx", "subnetx", 1, "unknown key 'subnetx' — did you mean 'subnet'?"},
                       {"fleets.e.ipv4", "10.99.0.0/33", 1, "'10.99.0.0/33' — not an IPv4 CIDR"},
                       {"http_routes[0].nodex", "nodex", 1, "unknown key 'nodex' — did you mean 'node'?"},
                       {"forwards[1]", "5", 32, "expected a map, got a scalar '5'"},
                       {"forwards[2].to", "c9", 1, "'c9' — unknown node; no fleet has it"},
                   });
}
