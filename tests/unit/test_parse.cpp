// config/parse, config/tree and config/diag: YAML text -> typed Config, with netplan-style
// diagnostics. Lines and columns below were counted by hand in the YAML texts (1-based); the
// message texts are the project's golden wording.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "config/parse.hpp"
#include "config/tree.hpp"
#include "helpers.hpp"

using namespace wgf;
using config::Diagnostic;
using config::Severity;
using test::parse_only;

namespace {

std::string ipstr(const std::optional<model::IpAddr>& a) { return a ? a->str() : "(none)"; }
std::string pfxstr(const std::optional<model::Prefix>& p) { return p ? p->str() : "(none)"; }

// Exactly one error, and it is this one.
void expect_one_error(const std::string& yaml, uint32_t line, uint32_t col, const std::string& path, const std::string& message) {
    auto l = parse_only(yaml);
    INFO("YAML:\n" << yaml << "\nDiagnostics:\n" << l->text());
    auto errs = l->errors();
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].loc.file == 0);
    CHECK(errs[0].loc.line == line);
    CHECK(errs[0].loc.col == col);
    CHECK(errs[0].path == path);
    CHECK(errs[0].message == message);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Good input

TEST_CASE("seed 002's example parses cleanly into the expected model", "[parse][seed002]") {
    const char* yaml = test::kSeed002Yaml;
    auto l = parse_only(yaml);
    INFO(l->text());
    CHECK(l->diags.all().empty());
    const auto& c = l->cfg();
    CHECK(c.domain == std::optional<std::string>("icpcnet.internal"));
    CHECK(c.prune_timeout == 1800);
    // Defaults from the schema.
    CHECK(c.state_dir == "/var/lib/wg-fleet");
    CHECK(c.hosts_file == "/run/wg_fleet_hosts");
    CHECK(c.http_routes_dir == "/etc/traefik/dynamic");
    CHECK_FALSE(c.keys_dir);
    CHECK_FALSE(c.userspace);
    CHECK(c.forwards.empty());
    CHECK(c.http_routes.empty());
    REQUIRE(c.fleets.size() == 2);

    const auto& se = c.fleets.at("southeast");
    CHECK(se.style == model::FleetStyle::subnet);
    CHECK(se.interface == "wg_southeast");
    CHECK(se.port == 51820);
    CHECK(ipstr(se.ip6) == "fd00:a0a8:34d:2a00::1");
    CHECK(pfxstr(se.subnet) == "fd00:a0a8:34d:2a00::/64");
    CHECK(se.external_ip == std::optional<std::string>("1.2.3.4"));
    CHECK(se.server == "server");
    CHECK_FALSE(se.server_public_key);
    CHECK(se.topology == model::Topology::hub);
    CHECK(se.keepalive == 25);
    CHECK_FALSE(se.mtu);
    CHECK_FALSE(se.exclusive);
    CHECK(se.controllers.empty());
    CHECK(se.peers.empty());

    const auto& nw = c.fleets.at("northwest");
    CHECK(nw.interface == "wg_northwest");
    CHECK(nw.port == 51821);
    CHECK(ipstr(nw.ip6) == "fd00:a0a8:34d:2000::1");
    CHECK(pfxstr(nw.subnet) == "fd00:a0a8:34d:2000::/64");
}

TEST_CASE("a full clan-style fleet parses every field", "[parse]") {
    const char* yaml = R"(domain: example.internal
prune_timeout: 2h30m
state_dir: /srv/wgf
keys_dir: /etc/wg-fleet/keys
userspace: boringtun-cli
hosts_file: /etc/hosts.d/fleet
http_routes_dir: /etc/traefik/conf
fleets:
  mesh:
    interface: wg-mesh
    port: 51900
    topology: mesh
    mtu: 1420
    keepalive: 0
    exclusive: true
    ipv4: 10.50.0.0/24
    controllers:
      server1:
        endpoint: "[2001:db8::1]:51901"
        public_key: WUTtRe8NvkAPhLOehJ4iEPbDU0RMKcvsJVGGsGNVMX8=
        id: 0x3bf7
        ipv4: 10.50.0.1
        routes: [192.168.7.0/24, "fd99::/64"]
    peers:
      laptop1:
        controller: server1
        suffix: "6987:50a0:9b93:4337"
        endpoint: laptop1.example.internal
forwards:
  - { name: ssh, node: server1, port: 2222, to: laptop1, to_port: 22, proto: tcp, fleet: mesh }
  - { name: dns, node: server1, port: 53, to: laptop1, proto: udp }
http_routes:
  - { name: app, node: server1, host: app.example.com, to: "http://laptop1:8080/x", entrypoint: web, certresolver: le }
  - { name: api, node: server1, host: api.example.com, to: "https://10.50.0.9" }
)";
    auto l = parse_only(yaml);
    INFO(l->text());
    CHECK(l->diags.all().empty());
    const auto& c = l->cfg();
    CHECK(c.prune_timeout == 9000);
    CHECK(c.state_dir == "/srv/wgf");
    CHECK(c.keys_dir == std::optional<std::string>("/etc/wg-fleet/keys"));
    CHECK(c.userspace == std::optional<std::string>("boringtun-cli"));
    CHECK(c.hosts_file == "/etc/hosts.d/fleet");
    CHECK(c.http_routes_dir == "/etc/traefik/conf");
    const auto& f = c.fleets.at("mesh");
    CHECK(f.style == model::FleetStyle::clan);
    CHECK(f.interface == "wg-mesh");
    CHECK(f.port == 51900);
    CHECK(f.topology == model::Topology::mesh);
    CHECK(f.mtu == std::optional<uint32_t>(1420));
    CHECK(f.keepalive == 0);
    CHECK(f.exclusive);
    CHECK(pfxstr(f.ipv4) == "10.50.0.0/24");
    const auto& s1 = f.controllers.at("server1");
    REQUIRE(s1.endpoint);
    CHECK(s1.endpoint->host == "2001:db8::1");
    CHECK(s1.endpoint->port == 51901);
    REQUIRE(s1.public_key);
    CHECK(s1.public_key->base64() == "WUTtRe8NvkAPhLOehJ4iEPbDU0RMKcvsJVGGsGNVMX8=");
    CHECK(s1.id == std::optional<uint16_t>(0x3bf7));
    CHECK(ipstr(s1.ipv4) == "10.50.0.1");
    REQUIRE(s1.routes.size() == 2);
    CHECK(s1.routes[0].str() == "192.168.7.0/24");
    CHECK(s1.routes[1].str() == "fd99::/64");
    const auto& p = f.peers.at("laptop1");
    CHECK(p.controller == std::optional<std::string>("server1"));
    CHECK(p.suffix == std::optional<uint64_t>(0x698750a09b934337ull));
    REQUIRE(p.endpoint);
    CHECK(p.endpoint->host == "laptop1.example.internal");
    CHECK(p.endpoint->port == 0);

    REQUIRE(c.forwards.size() == 2);
    CHECK(c.forwards[0].name == "ssh");
    CHECK(c.forwards[0].node == "server1");
    CHECK(c.forwards[0].port == 2222);
    CHECK(c.forwards[0].to == "laptop1");
    CHECK(c.forwards[0].to_port == 22);
    CHECK(c.forwards[0].proto == model::Proto::tcp);
    CHECK(c.forwards[0].fleet == std::optional<std::string>("mesh"));
    CHECK(c.forwards[1].proto == model::Proto::udp);
    CHECK(c.forwards[1].to_port == 53);  // defaults to port
    CHECK_FALSE(c.forwards[1].fleet);

    REQUIRE(c.http_routes.size() == 2);
    CHECK(c.http_routes[0].host == "app.example.com");
    CHECK(c.http_routes[0].to == "http://laptop1:8080/x");
    CHECK(c.http_routes[0].entrypoint == "web");
    CHECK(c.http_routes[0].certresolver == std::optional<std::string>("le"));
    CHECK(c.http_routes[1].entrypoint == "websecure");
    CHECK_FALSE(c.http_routes[1].certresolver);
}

TEST_CASE("null and empty members are accepted", "[parse]") {
    const char* yaml = R"(fleets:
  mesh:
    controllers:
      server1:
    peers:
      laptop1:
      laptop2: {}
      laptop3: ~
)";
    auto l = parse_only(yaml);
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
    const auto& f = l->cfg().fleets.at("mesh");
    REQUIRE(f.controllers.count("server1"));
    REQUIRE(f.peers.size() == 3);
    CHECK(f.peers.at("laptop1") == model::Member{});
    CHECK(f.peers.at("laptop2") == model::Member{});
    CHECK(f.peers.at("laptop3") == model::Member{});
    CHECK(f.interface == "mesh");  // clan default: the fleet name
}

TEST_CASE("an empty file or one with only comments is an empty fleet", "[parse]") {
    for (const char* yaml : {"", "# nothing here\n", "---\n"}) {
        auto l = parse_only(yaml);
        INFO("'" << yaml << "' " << l->text());
        CHECK(l->diags.all().empty());
        CHECK(l->cfg() == model::Config{});
    }
}

TEST_CASE("hex and decimal ids, suffix forms", "[parse]") {
    auto l = parse_only(R"(fleets:
  f:
    controllers:
      a: { id: 0x00ff }
      b: { id: "0xBEEF" }
      c: { id: 65535 }
    peers:
      p: { suffix: 0xffffffffffffffff, controller: a }
      q: { suffix: 18446744073709551615, controller: a }
      r: { suffix: "0:0:0:2", controller: a }
      s: { suffix: "0x2", controller: a }
)");
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
    const auto& f = l->cfg().fleets.at("f");
    CHECK(f.controllers.at("a").id == std::optional<uint16_t>(0xff));
    CHECK(f.controllers.at("b").id == std::optional<uint16_t>(0xbeef));
    CHECK(f.controllers.at("c").id == std::optional<uint16_t>(0xffff));
    CHECK(f.peers.at("p").suffix == std::optional<uint64_t>(UINT64_MAX));
    CHECK(f.peers.at("q").suffix == std::optional<uint64_t>(UINT64_MAX));
    CHECK(f.peers.at("r").suffix == std::optional<uint64_t>(2));
    CHECK(f.peers.at("s").suffix == std::optional<uint64_t>(2));
}

// ---------------------------------------------------------------------------------------------
// Every error class: location, path and message

TEST_CASE("unknown keys are errors with a 'did you mean' suggestion", "[parse][errors]") {
    expect_one_error("prune_timout: 30m\n", 1, 1, "prune_timout", "unknown key 'prune_timout' — did you mean 'prune_timeout'?");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: {}
    topolgy: mesh
)",
                     5, 5, "fleets.mesh.topolgy", "unknown key 'topolgy' — did you mean 'topology'?");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1:
        endpont: vpn.example.com
)",
                     5, 9, "fleets.mesh.controllers.s1.endpont", "unknown key 'endpont' — did you mean 'endpoint'?");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: {}
    peers:
      p1: { controler: s1 }
)",
                     6, 13, "fleets.mesh.peers.p1.controler", "unknown key 'controler' — did you mean 'controller'?");
    expect_one_error(R"(forwards:
  - { name: a, node: n, port: 1, to: m, too_port: 2 }
)",
                     2, 41, "forwards[0].too_port", "unknown key 'too_port' — did you mean 'to_port'?");
}

TEST_CASE("unknown keys with nothing close list the allowed keys", "[parse][errors]") {
    expect_one_error("colour: red\n", 1, 1, "colour",
                     "unknown key 'colour' — allowed keys here: domain, prune_timeout, state_dir, keys_dir, key_max_age, userspace, "
                     "hosts_file, http_routes_dir, http_server, caddy_reload, fleets, forwards, http_routes, serve, firewall");
    // A peer-only key on a controller is unknown there.
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: { suffix: "1:2:3:4" }
)",
                     4, 13, "fleets.mesh.controllers.s1.suffix",
                     "unknown key 'suffix' — allowed keys here: public_key, endpoint, routes, id, ipv4");
}

TEST_CASE("duplicate keys are detected, which a YAML parser alone would accept", "[parse][errors][duplicate]") {
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: {}
    peers:
      laptop2: {}
      laptop2: {}
)",
                     7, 7, "fleets.mesh.peers.laptop2", "duplicate key 'laptop2' (first defined at line 6, column 7)");
    expect_one_error("domain: a.example\nprune_timeout: 1h\ndomain: b.example\n", 3, 1, "domain",
                     "duplicate key 'domain' (first defined at line 1, column 1)");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: { endpoint: a.example, endpoint: b.example }
)",
                     4, 34, "fleets.mesh.controllers.s1.endpoint", "duplicate key 'endpoint' (first defined at line 4, column 13)");
}

TEST_CASE("a key seen three times is reported twice, each pointing at the first", "[parse][errors][duplicate]") {
    auto l = parse_only("domain: a.example\ndomain: b.example\ndomain: c.example\n");
    INFO(l->text());
    auto errs = l->errors();
    REQUIRE(errs.size() == 2);
    CHECK(errs[0].loc.line == 2);
    CHECK(errs[1].loc.line == 3);
    CHECK(errs[0].message == "duplicate key 'domain' (first defined at line 1, column 1)");
    CHECK(errs[1].message == "duplicate key 'domain' (first defined at line 1, column 1)");
}

TEST_CASE("wrong types are errors naming what was expected", "[parse][errors][types]") {
    expect_one_error(R"(fleets:
  mesh:
    port: "abc"
    controllers: { s1: {} }
)",
                     3, 11, "fleets.mesh.port", "'abc' — expected an integer 1..65535");
    expect_one_error(R"(fleets:
  mesh:
    port: [1]
    controllers: { s1: {} }
)",
                     3, 11, "fleets.mesh.port", "expected an integer 1..65535, got a list");
    expect_one_error(R"(fleets:
  mesh:
    controllers: { s1: {} }
    peers: 5
)",
                     4, 12, "fleets.mesh.peers", "expected a map, got a scalar '5'");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: 5
)",
                     4, 11, "fleets.mesh.controllers.s1", "expected a map, got a scalar '5'");
    expect_one_error(R"(fleets:
  mesh:
    controllers:
      s1: { routes: 10.20.0.0/16 }
)",
                     4, 21, "fleets.mesh.controllers.s1.routes", "expected a list of CIDRs, got a scalar");
    expect_one_error("fleets: [a, b]\n", 1, 9, "fleets", "expected a map, got a list");
    expect_one_error("domain: { a: 1 }\n", 1, 9, "domain", "expected a string, got a map");
    expect_one_error("http_routes: { a: 1 }\n", 1, 14, "http_routes", "expected a list, got a map");
    expect_one_error(R"(fleets:
  mesh:
    controllers: { s1: {} }
    exclusive: yes
)",
                     4, 16, "fleets.mesh.exclusive", "'yes' — expected true or false");
    expect_one_error(R"(fleets:
  mesh:
    controllers: { s1: {} }
    exclusive: "true"
)",
                     4, 16, "fleets.mesh.exclusive", "'true' — expected true or false");
    expect_one_error("- a\n- b\n", 1, 1, "", "the file must be a map of settings, got a list");
}

TEST_CASE("quoted numbers are rejected for ports", "[parse][errors][types]") {
    expect_one_error(R"(fleets:
  mesh:
    port: "51820"
    controllers: { s1: {} }
)",
                     3, 11, "fleets.mesh.port", "'51820' — expected an integer 1..65535");
    expect_one_error(R"(forwards:
  - name: a
    node: n
    port: 2222
    to: m
    to_port: '22'
)",
                     6, 14, "forwards[0].to_port", "'22' — expected an integer 1..65535");
    expect_one_error(R"(forwards:
  - { name: a, node: n, port: "2222", to: m }
)",
                     2, 31, "forwards[0].port", "'2222' — expected an integer 1..65535");
}

TEST_CASE("out-of-range and malformed values", "[parse][errors][values]") {
    struct Row {
        const char* yaml;
        uint32_t line, col;
        const char* path;
        const char* message;
    };
    const Row rows[] = {
        {.yaml = "fleets:\n  mesh:\n    port: 70000\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.port",
         .message = "'70000' — must be 1..65535"},
        {.yaml = "fleets:\n  mesh:\n    port: 0\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.port",
         .message = "'0' — must be 1..65535"},
        {.yaml = "fleets:\n  mesh:\n    port: -1\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.port",
         .message = "'-1' — expected an integer 1..65535"},
        {.yaml = "fleets:\n  mesh:\n    port: 0x50\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.port",
         .message = "'0x50' — expected an integer 1..65535"},
        {.yaml = "fleets:\n  mesh:\n    mtu: 1000\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 10,
         .path = "fleets.mesh.mtu",
         .message = "'1000' — must be 1280..65535"},
        {.yaml = "fleets:\n  mesh:\n    keepalive: 65536\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 16,
         .path = "fleets.mesh.keepalive",
         .message = "'65536' — must be 0..65535"},
        {.yaml = "fleets:\n  mesh:\n    topology: star\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 15,
         .path = "fleets.mesh.topology",
         .message = "'star' — topology is hub or mesh"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      server1:\n        endpoint: vpn.example.com:99999\n",
         .line = 5,
         .col = 19,
         .path = "fleets.mesh.controllers.server1.endpoint",
         .message = "'vpn.example.com:99999' — not an endpoint: port must be 1..65535"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      server1:\n        public_key: YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4\n",
         .line = 5,
         .col = 21,
         .path = "fleets.mesh.controllers.server1.public_key",
         .message = "'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4' — not a WireGuard key: a key is 32 bytes in base64: 44 characters ending in '='"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      server1:\n        routes: [10.20.0.0/33]\n",
         .line = 5,
         .col = 18,
         .path = "fleets.mesh.controllers.server1.routes[0]",
         .message = "'10.20.0.0/33' — not a CIDR: prefix length must be 0..32"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      server1:\n        routes: [10.20.0.0/16, 10.21.0.1/16]\n",
         .line = 5,
         .col = 32,
         .path = "fleets.mesh.controllers.server1.routes[1]",
         .message = "'10.21.0.1/16' — host bits are set; did you mean 10.21.0.0/16?"},
        {.yaml = "fleets:\n  mesh:\n    interface: wg-mesh-production\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 16,
         .path = "fleets.mesh.interface",
         .message = "'wg-mesh-production' — an interface name has at most 15 characters"},
        {.yaml = "fleets:\n  mesh:\n    interface: wg/mesh\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 16,
         .path = "fleets.mesh.interface",
         .message = "'wg/mesh' — an interface name cannot contain '/', ':', white space or non-ASCII characters"},
        {.yaml = "fleets:\n  mesh:\n    interface: ..\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 16,
         .path = "fleets.mesh.interface",
         .message = "'..' — an interface name cannot be '.' or '..'"},
        {.yaml = "fleets:\n  abcdefghijklmnopq:\n    controllers:\n      s1: {}\n",
         .line = 2,
         .col = 3,
         .path = "fleets.abcdefghijklmnopq",
         .message =
             "the default interface name 'abcdefghijklmnopq' is not valid (an interface name has at most 15 characters); set interface:"},
        {.yaml = "fleets:\n  southeast-region:\n    ip6: fd00::1\n    subnet: fd00::/64\n",
         .line = 2,
         .col = 3,
         .path = "fleets.southeast-region",
         .message =
             "the default interface name 'wg_southeast-region' is not valid (an interface name has at most 15 characters); set interface:"},
        {.yaml = "prune_timeout: 30x\n",
         .line = 1,
         .col = 16,
         .path = "prune_timeout",
         .message = "'30x' — a duration is like 30m, 1h or 2h30m (units d, h, m, s)"},
        {.yaml = "prune_timeout: 30\n",
         .line = 1,
         .col = 16,
         .path = "prune_timeout",
         .message = "'30' — a duration is like 30m, 1h or 2h30m (units d, h, m, s)"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      s1: {}\n    subnet: fd00::/64\n",
         .line = 5,
         .col = 5,
         .path = "fleets.mesh.subnet",
         .message = "a fleet is either clan-style (controllers:) or subnet-style (ip6:, subnet:), not both"},
        {.yaml = "fleets:\n  mesh:\n    port: 51820\n",
         .line = 2,
         .col = 3,
         .path = "fleets.mesh",
         .message = "a fleet needs controllers: (clan style) or ip6: and subnet: (subnet style)"},
        {.yaml = "fleets:\n  lab:\n    ip6: fd00::1\n",
         .line = 2,
         .col = 3,
         .path = "fleets.lab",
         .message = "a subnet-style fleet needs subnet: (the clients' IPv6 subnet)"},
        {.yaml = "fleets:\n  lab:\n    subnet: fd00::/64\n",
         .line = 2,
         .col = 3,
         .path = "fleets.lab",
         .message = "a subnet-style fleet needs ip6: (the server's address)"},
        {.yaml = "fleets:\n  lab:\n    ip6: fd00::1\n    subnet: fd00::1/64\n",
         .line = 4,
         .col = 13,
         .path = "fleets.lab.subnet",
         .message = "'fd00::1/64' — host bits are set; did you mean fd00::/64?"},
        {.yaml = "fleets:\n  lab:\n    ip6: fd00::1\n    subnet: 10.0.0.0/8\n",
         .line = 4,
         .col = 13,
         .path = "fleets.lab.subnet",
         .message = "'10.0.0.0/8' — subnet must be an IPv6 CIDR"},
        {.yaml = "fleets:\n  lab:\n    ip6: fd00::1\n    subnet: fd00::/121\n",
         .line = 4,
         .col = 13,
         .path = "fleets.lab.subnet",
         .message = "'fd00::/121' — the subnet needs room for clients: /120 or shorter"},
        {.yaml = "fleets:\n  lab:\n    ip6: 10.0.0.1\n    subnet: fd00::/64\n",
         .line = 3,
         .col = 10,
         .path = "fleets.lab.ip6",
         .message = "'10.0.0.1' — ip6 must be an IPv6 address"},
        {.yaml = "fleets:\n  lab:\n    ip6: fd00::1\n    subnet: fd00::/64\n    external_ip: \"not valid\"\n",
         .line = 5,
         .col = 18,
         .path = "fleets.lab.external_ip",
         .message = "'not valid' — external_ip must be an IP address or a DNS name"},
        {.yaml = "fleets:\n  mesh:\n    ipv4: fd00::/64\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.ipv4",
         .message = "'fd00::/64' — ipv4 must be an IPv4 CIDR such as 10.50.0.0/24"},
        {.yaml = "fleets:\n  mesh:\n    ipv4: 10.50.0.1/24\n    controllers:\n      s1: {}\n",
         .line = 3,
         .col = 11,
         .path = "fleets.mesh.ipv4",
         .message = "'10.50.0.1/24' — host bits are set; did you mean 10.50.0.0/24?"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      s1: { id: 65536 }\n",
         .line = 4,
         .col = 17,
         .path = "fleets.mesh.controllers.s1.id",
         .message = "'65536' — must be 0..65535"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      s1: { id: 0x10000 }\n",
         .line = 4,
         .col = 17,
         .path = "fleets.mesh.controllers.s1.id",
         .message = "'0x10000' — must be 0..65535"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      s1: { ipv4: fd00::1 }\n",
         .line = 4,
         .col = 19,
         .path = "fleets.mesh.controllers.s1.ipv4",
         .message = "'fd00::1' — ipv4 must be an IPv4 address"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: 0 }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'0' — suffixes 0 and 1 are reserved (subnet and controller addresses)"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: \"0:0:0:1\" }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'0:0:0:1' — suffixes 0 and 1 are reserved (subnet and controller addresses)"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: \"1:2:3\" }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'1:2:3' — a suffix is four hex groups like 6987:50a0:9b93:4337, or an integer"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: \"1:2:3:4:5\" }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'1:2:3:4:5' — a suffix is four hex groups like 6987:50a0:9b93:4337, or an integer"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: \"12345:0:0:0\" }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'12345:0:0:0' — a suffix is four hex groups like 6987:50a0:9b93:4337, or an integer"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { suffix: \"16\" }\n",
         .line = 5,
         .col = 20,
         .path = "fleets.mesh.peers.p.suffix",
         .message = "'16' — expected an integer 0..18446744073709551615"},
        {.yaml = "fleets:\n  mesh:\n    controllers: { s1: {} }\n    peers:\n      p: { controller: \"s 1\" }\n",
         .line = 5,
         .col = 24,
         .path = "fleets.mesh.peers.p.controller",
         .message = "'s 1' — node names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters"},
        {.yaml = "state_dir: var/lib/wg-fleet\n",
         .line = 1,
         .col = 12,
         .path = "state_dir",
         .message = "'var/lib/wg-fleet' — must be an absolute path"},
        {.yaml = "keys_dir: keys\n", .line = 1, .col = 11, .path = "keys_dir", .message = "'keys' — must be an absolute path"},
        {.yaml = "hosts_file: ''\n", .line = 1, .col = 13, .path = "hosts_file", .message = "'' — must be an absolute path"},
        {.yaml = "userspace: \"\"\n", .line = 1, .col = 12, .path = "userspace", .message = "userspace must name a command"},
        {.yaml = "domain: -bad.example\n", .line = 1, .col = 9, .path = "domain", .message = "'-bad.example' — not a DNS domain name"},
        {.yaml = "fleets:\n  mesh.prod:\n    controllers:\n      s1: {}\n",
         .line = 2,
         .col = 3,
         .path = "fleets.mesh.prod",
         .message = "'mesh.prod' — fleet names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters"},
        {.yaml = "fleets:\n  mesh:\n    controllers:\n      laptop.1: {}\n",
         .line = 4,
         .col = 7,
         .path = "fleets.mesh.controllers.laptop.1",
         .message = "'laptop.1' — node names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters"},
        {.yaml = "forwards:\n  - name: a\n    node: gw\n    to: vm\n",
         .line = 2,
         .col = 5,
         .path = "forwards[0]",
         .message = "missing required key 'port'"},
        {.yaml = "forwards:\n  - name: a\n    node: gw\n    port: 22\n    to: vm\n    proto: icmp\n",
         .line = 6,
         .col = 12,
         .path = "forwards[0].proto",
         .message = "'icmp' — proto is tcp or udp"},
        {.yaml = "forwards:\n  - name: -a\n    node: gw\n    port: 22\n    to: vm\n",
         .line = 2,
         .col = 11,
         .path = "forwards[0].name",
         .message = "'-a' — names use letters, digits, '-', '_' and '.', at most 63 characters"},
        {.yaml = "forwards:\n  - name: a\n    node: gw\n    port: 22\n    to: vm\n    fleet: x.y\n",
         .line = 6,
         .col = 12,
         .path = "forwards[0].fleet",
         .message = "'x.y' — fleet names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters"},
        {.yaml = "forwards:\n  - 5\n", .line = 2, .col = 5, .path = "forwards[0]", .message = "expected a map, got a scalar '5'"},
        {.yaml = "http_routes:\n  - { name: r, node: gw, host: \"bad host\", to: \"http://vm\" }\n",
         .line = 2,
         .col = 32,
         .path = "http_routes[0].host",
         .message = "'bad host' — not a DNS host name"},
        {.yaml = "http_routes:\n  - { name: r, node: gw, to: \"http://vm\" }\n",
         .line = 2,
         .col = 5,
         .path = "http_routes[0]",
         .message = "missing required key 'host'"},
    };
    for (const auto& r : rows) {
        DYNAMIC_SECTION(r.path << " @" << r.line << ":" << r.col) { expect_one_error(r.yaml, r.line, r.col, r.path, r.message); }
    }
}

TEST_CASE("YAML syntax errors are located", "[parse][errors][syntax]") {
    auto l = parse_only(R"(fleets:
  mesh:
    controllers:
      s1: { routes: [10.20.0.0/16 }
)");
    INFO(l->text());
    auto errs = l->errors();
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].loc.line == 4);
    CHECK(errs[0].loc.col == 35);  // the '}' that closes nothing open
    CHECK(errs[0].path == "");
    CHECK(errs[0].message.rfind("YAML syntax error: ", 0) == 0);
    CHECK(l->cfg() == model::Config{});
}

TEST_CASE("an unterminated quoted scalar is a syntax error", "[parse][errors][syntax]") {
    // YAML requires the closing quote; without it the value must not be silently accepted.
    auto l = parse_only("userspace: \"wireguard-go\n");
    INFO(l->text());
    CHECK(l->diags.has_errors());
    CHECK_FALSE(l->cfg().userspace.has_value());
}

TEST_CASE("YAML features the fleet file does not use are errors, not silently reinterpreted", "[parse][errors][syntax]") {
    expect_one_error("domain: a.example\n---\ndomain: b.example\n", 2, 1, "",
                     "a second YAML document ('---'): the fleet file holds exactly one; use a drop-in file instead");
    expect_one_error("domain: !secret a.example\n", 1, 9, "domain", "YAML tag '!secret' is not supported here; write the value without it");
    expect_one_error("forwards: !!omap []\n", 1, 11, "forwards",
                     "YAML tag 'tag:yaml.org,2002:omap' is not supported here; write the value without it");
    expect_one_error("domain: *nowhere\n", 1, 9, "domain", "alias *nowhere refers to no anchor defined before it");
    expect_one_error("[a, b]: 1\n", 1, 1, "", "keys must be plain strings, not a list");
    expect_one_error("~: 1\n", 1, 1, "", "keys must be plain strings, not nothing (null)");
}

TEST_CASE("scalars: quoting, block styles, !!str and the null spellings", "[parse][syntax]") {
    config::Sources sources;
    config::Diagnostics diags;
    auto root = config::parse_yaml("a: \"1\"\nb: '2'\nc: !!str 3\nd: 4\ne: |\n  five\nf: ~\ng:\nh: null\ni: 'null'\n", 0, diags);
    INFO(diags.all().size());
    REQUIRE(diags.all().empty());
    REQUIRE(root.is_map());
    auto val = [&](const char* k) -> const config::Node& {
        const auto* e = root.find(k);
        REQUIRE(e != nullptr);
        return e->value;
    };
    CHECK((val("a").is_scalar() && val("a").quoted && val("a").scalar == "1"));
    CHECK((val("b").quoted && val("b").scalar == "2"));
    CHECK((val("c").quoted && val("c").scalar == "3"));
    CHECK((val("d").is_scalar() && !val("d").quoted && val("d").scalar == "4"));
    CHECK((val("e").quoted && val("e").scalar == "five\n"));
    CHECK(val("f").is_null());
    CHECK(val("g").is_null());
    CHECK(val("h").is_null());
    CHECK((val("i").is_scalar() && val("i").scalar == "null"));
    CHECK(val("d").loc.line == 4);
    CHECK(val("d").loc.col == 4);
}

TEST_CASE("an alias copies its anchor's value, keeping the alias's own location", "[parse][syntax]") {
    config::Sources sources;
    config::Diagnostics diags;
    auto root = config::parse_yaml("x: &r [10.0.0.0/8, 10.1.0.0/16]\ny: { z: *r }\n", 0, diags);
    REQUIRE(diags.all().empty());
    const auto* y = root.find("y");
    REQUIRE(y != nullptr);
    const auto* z = y->value.find("z");
    REQUIRE(z != nullptr);
    REQUIRE(z->value.is_seq());
    REQUIRE(z->value.seq.size() == 2);
    CHECK(z->value.seq[1].scalar == "10.1.0.0/16");
    CHECK(z->value.loc.line == 2);
    CHECK(z->value.loc.col == 9);  // where *r is written
}

TEST_CASE("a NUL inside a quoted address is rejected, not truncated", "[parse][errors][values]") {
    // "\0" is a valid YAML escape; the address text then has bytes after the NUL.
    auto l = parse_only("fleets:\n  lab:\n    ip6: \"fd00::1\\0junk\"\n    subnet: fd00::/64\n");
    INFO(l->text());
    auto e = l->at("fleets.lab.ip6");
    CHECK(e.size() == 1);
    CHECK_FALSE((l->cfg().fleets.count("lab") && l->cfg().fleets.at("lab").ip6.has_value()));
}

TEST_CASE("all diagnostics are collected, in file order", "[parse][errors]") {
    const char* yaml = R"(prune_timeout: 30x
fleets:
  mesh:
    port: 0
    controllers:
      s1: { endpoint: "vpn:0" }
)";
    auto l = parse_only(yaml);
    INFO(l->text());
    CHECK(l->diags.errors() == 3);
    CHECK(l->diags.warnings() == 0);
    auto errs = l->errors();
    REQUIRE(errs.size() == 3);
    CHECK(errs[0].path == "prune_timeout");
    CHECK(errs[0].loc.line == 1);
    CHECK(errs[0].loc.col == 16);
    CHECK(errs[1].path == "fleets.mesh.port");
    CHECK(errs[1].loc.line == 4);
    CHECK(errs[1].loc.col == 11);
    CHECK(errs[2].path == "fleets.mesh.controllers.s1.endpoint");
    CHECK(errs[2].loc.line == 6);
    CHECK(errs[2].loc.col == 23);
}

TEST_CASE("many errors in one file are all reported", "[parse][errors]") {
    std::string yaml = "fleets:\n  mesh:\n    controllers:\n";
    for (int i = 0; i < 50; ++i) yaml += "      s" + std::to_string(i) + ": { endpoint: \"h:0\" }\n";
    auto l = parse_only(yaml);
    CHECK(l->diags.errors() == 50);
}

// ---------------------------------------------------------------------------------------------
// Rendered diagnostics: the exact text users see

TEST_CASE("render: file:line:col, path, message, source line and caret", "[parse][render]") {
    auto l = parse_only(R"(fleets:
  mesh:
    controllers:
      server1:
        endpoint: vpn.example.com:99999
)");
    REQUIRE(l->diags.all().size() == 1);
    CHECK(config::render(l->diags.all()[0], l->sources) ==
          "fleet.yaml:5:19: error: fleets.mesh.controllers.server1.endpoint: 'vpn.example.com:99999' — not an endpoint: "
          "port must be 1..65535\n"
          "            endpoint: vpn.example.com:99999\n"
          "                      ^\n");
}

TEST_CASE("render: a duplicate key", "[parse][render]") {
    auto l = parse_only("fleets:\n  mesh:\n    controllers:\n      s1: {}\n    peers:\n      laptop2: {}\n      laptop2: {}\n",
                        "wg-fleet.yaml");
    REQUIRE(l->diags.all().size() == 1);
    CHECK(config::render_all(l->diags, l->sources) ==
          "wg-fleet.yaml:7:7: error: fleets.mesh.peers.laptop2: duplicate key 'laptop2' (first defined at line 6, column 7)\n"
          "          laptop2: {}\n"
          "          ^\n");
}

TEST_CASE("render: an unknown key at column 1 and several errors in order", "[parse][render]") {
    auto l = parse_only("prune_timout: 30m\nstate_dir: relative\n", "f.yaml");
    CHECK(config::render_all(l->diags, l->sources) ==
          "f.yaml:1:1: error: prune_timout: unknown key 'prune_timout' — did you mean 'prune_timeout'?\n"
          "    prune_timout: 30m\n"
          "    ^\n"
          "f.yaml:2:12: error: state_dir: 'relative' — must be an absolute path\n"
          "    state_dir: relative\n"
          "               ^\n");
}

TEST_CASE("render: CRLF line endings do not leak into the quoted line", "[parse][render]") {
    auto l = parse_only("domain: -bad\r\nprune_timeout: 1h\r\n", "win.yaml");
    REQUIRE(l->diags.all().size() == 1);
    CHECK(config::render(l->diags.all()[0], l->sources) ==
          "win.yaml:1:9: error: domain: '-bad' — not a DNS domain name\n"
          "    domain: -bad\n"
          "            ^\n");
}

TEST_CASE("render: diagnostics without a location, and warnings", "[parse][render]") {
    config::Sources s;
    s.add("a.yaml", "x: 1\n");
    Diagnostic d{Severity::warning, config::Loc{}, "fleets.mesh", "something to know"};
    CHECK(config::render(d, s) == "warning: fleets.mesh: something to know\n");
    Diagnostic e{.severity = Severity::error,
                 .loc = {.file = 0, .line = 0, .col = 0},
                 .path = "",
                 .message = "cannot read the file: No such file or directory"};
    CHECK(config::render(e, s) == "a.yaml: error: cannot read the file: No such file or directory\n");
}

TEST_CASE("quote escapes control characters and shortens long values", "[parse][render]") {
    CHECK(config::quote("abc") == "'abc'");
    CHECK(config::quote("a\nb\tc") == "'a\\nb\\tc'");
    CHECK(config::quote(std::string("a\x01z", 3)) == "'a\\x01z'");
    std::string longv(200, 'x');
    auto q = config::quote(longv);
    CHECK(q.size() < 100);
    CHECK(q.find("…") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Drop-ins

TEST_CASE("drop-ins merge deeply and concatenate forwards and http_routes", "[parse][dropin]") {
    std::vector<config::SourceFile> files = {
        {"/etc/wg-fleet.yaml", R"(domain: example.internal
fleets:
  mesh:
    port: 51820
    controllers:
      server1: { endpoint: vpn1.example.com }
forwards:
  - { name: a, node: server1, port: 2201, to: laptop1, to_port: 22 }
)"},
        {"/etc/wg-fleet.d/10-peers.yaml", R"(fleets:
  mesh:
    peers:
      laptop1: { controller: server1 }
    controllers:
      server2: { endpoint: vpn2.example.com }
forwards:
  - { name: b, node: server1, port: 2202, to: laptop1, to_port: 22 }
)"},
        {"/etc/wg-fleet.d/20-more.yaml", R"(prune_timeout: 1h
fleets:
  mesh:
    peers:
      laptop2: { controller: server2 }
  lab:
    ip6: fd00:1::1
    subnet: fd00:1::/64
forwards:
  - { name: c, node: server1, port: 2203, to: laptop2 }
http_routes:
  - { name: r, node: server1, host: x.example.com, to: "http://laptop1:80" }
)"},
    };
    config::Sources sources;
    config::Diagnostics diags;
    auto parsed = config::parse(files, sources, diags);
    INFO(config::render_all(diags, sources));
    CHECK(diags.all().empty());
    CHECK(sources.size() == 3);
    const auto& c = parsed.config;
    CHECK(c.domain == std::optional<std::string>("example.internal"));
    CHECK(c.prune_timeout == 3600);
    REQUIRE(c.fleets.size() == 2);
    const auto& m = c.fleets.at("mesh");
    CHECK(m.port == 51820);
    CHECK(m.controllers.size() == 2);
    CHECK(m.controllers.count("server1"));
    CHECK(m.controllers.count("server2"));
    CHECK(m.peers.size() == 2);
    CHECK(m.peers.at("laptop2").controller == std::optional<std::string>("server2"));
    CHECK(c.fleets.count("lab"));
    REQUIRE(c.forwards.size() == 3);
    CHECK(c.forwards[0].name == "a");
    CHECK(c.forwards[1].name == "b");
    CHECK(c.forwards[2].name == "c");
    CHECK(c.forwards[2].to_port == 2203);
    REQUIRE(c.http_routes.size() == 1);
    CHECK(c.http_routes[0].name == "r");
}

TEST_CASE("a drop-in changing a value is a conflict naming both places", "[parse][dropin]") {
    std::vector<config::SourceFile> files = {
        {"wg-fleet.yaml", "fleets:\n  mesh:\n    controllers:\n      server1: {}\n    port: 51820\n"},
        {"wg-fleet.d/30-port.yaml", "fleets:\n  mesh:\n    port: 51821\n"},
    };
    config::Sources sources;
    config::Diagnostics diags;
    auto parsed = config::parse(files, sources, diags);
    auto all = diags.sorted();
    INFO(config::render_all(diags, sources));
    REQUIRE(diags.errors() == 1);
    const auto& d = all.at(0);
    CHECK(d.loc.file == 1);  // the drop-in
    CHECK(d.loc.line == 3);
    CHECK(d.loc.col == 11);
    CHECK(d.path == "fleets.mesh.port");
    CHECK(d.message == "conflicts with the value set at wg-fleet.yaml:5:11: a drop-in may add keys, not change them");
    CHECK(config::render(d, sources) ==
          "wg-fleet.d/30-port.yaml:3:11: error: fleets.mesh.port: conflicts with the value set at wg-fleet.yaml:5:11: "
          "a drop-in may add keys, not change them\n"
          "        port: 51821\n"
          "              ^\n");
    // The main file's value stays.
    CHECK(parsed.config.fleets.at("mesh").port == 51820);
}

TEST_CASE("drop-in conflicts: the same value twice, lists other than forwards, a scalar against a map", "[parse][dropin]") {
    auto run = [](const std::string& main, const std::string& drop) {
        std::vector<config::SourceFile> files = {{"main.yaml", main}, {"drop.yaml", drop}};
        auto l = std::make_unique<test::Loaded>();
        l->parsed = config::parse(files, l->sources, l->diags);
        return l;
    };
    const std::string main = "domain: example.internal\nfleets:\n  mesh:\n    controllers:\n      s1: { routes: [10.1.0.0/16] }\n";
    {
        auto l = run(main, "domain: example.internal\n");
        INFO(l->text());
        auto e = l->at("domain");
        REQUIRE(e.size() == 1);
        CHECK(e[0].loc.file == 1);
        CHECK(test::contains(e[0].message, "main.yaml:1:9"));
    }
    {
        auto l = run(main, "fleets:\n  mesh:\n    controllers:\n      s1: { routes: [10.2.0.0/16] }\n");
        INFO(l->text());
        auto e = l->at("fleets.mesh.controllers.s1.routes");
        REQUIRE(e.size() == 1);
        CHECK(e[0].loc.file == 1);
        CHECK(e[0].loc.line == 4);
        CHECK(test::contains(e[0].message, "main.yaml:5:21"));
    }
    {
        auto l = run(main, "fleets:\n  mesh: 5\n");
        INFO(l->text());
        auto e = l->at("fleets.mesh");
        REQUIRE(e.size() == 1);
        CHECK(e[0].loc.file == 1);
        CHECK(test::contains(e[0].message, "main.yaml:4:5"));
    }
}

TEST_CASE("errors inside a drop-in point into the drop-in", "[parse][dropin]") {
    std::vector<config::SourceFile> files = {
        {"main.yaml", "fleets:\n  mesh:\n    controllers:\n      s1: {}\n"},
        {"d/10.yaml", "fleets:\n  mesh:\n    peers:\n      p1: { endpont: x }\n"},
        {"d/20.yaml", "- not a map\n"},
    };
    config::Sources sources;
    config::Diagnostics diags;
    config::parse(files, sources, diags);
    auto all = diags.sorted();
    INFO(config::render_all(diags, sources));
    REQUIRE(all.size() == 2);
    CHECK(all[0].loc.file == 1);
    CHECK(all[0].loc.line == 4);
    CHECK(all[0].loc.col == 13);
    CHECK(all[0].path == "fleets.mesh.peers.p1.endpont");
    CHECK(all[1].loc.file == 2);
    CHECK(all[1].message == "the file must be a map of settings, got a list");
    CHECK(test::contains(config::render(all[0], sources), "d/10.yaml:4:13: error: "));
}

TEST_CASE("a drop-in fills in a member the main file left null", "[parse][dropin]") {
    std::vector<config::SourceFile> files = {
        {"main.yaml", "fleets:\n  mesh:\n    controllers:\n      s1: {}\n    peers:\n      laptop1:\n"},
        {"drop.yaml", "fleets:\n  mesh:\n    peers:\n      laptop1: { public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }\n"},
    };
    config::Sources sources;
    config::Diagnostics diags;
    auto parsed = config::parse(files, sources, diags);
    INFO(config::render_all(diags, sources));
    CHECK(diags.all().empty());
    const auto& p = parsed.config.fleets.at("mesh").peers.at("laptop1");
    REQUIRE(p.public_key);
    CHECK(p.public_key->base64() == "cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=");
}

// ---------------------------------------------------------------------------------------------
// Alias bombs

namespace {
std::string laughs(int levels) {
    std::string y = "fleets:\n  mesh:\n    controllers: { s1: {} }\n";
    y += "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
    for (int i = 1; i < levels; ++i) {
        std::string prev = "*a" + std::to_string(i - 1);
        y += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int k = 0; k < 10; ++k) y += (k ? "," : "") + prev;
        y += "]\n";
    }
    return y;
}
}  // namespace

TEST_CASE("a small alias bomb parses quickly and reports its unknown keys", "[parse][bomb]") {
    auto l = parse_only(laughs(5));  // about 10^5 nodes after expansion
    INFO(l->text().substr(0, 2000));
    CHECK(l->diags.errors() == 5);  // a0..a4 are unknown keys
    CHECK(l->cfg().fleets.count("mesh"));
}

TEST_CASE("an alias referring to its own ancestor terminates with an error", "[parse][bomb]") {
    auto l = parse_only("fleets:\n  mesh:\n    controllers: { s1: {} }\na: &a [*a]\n");
    INFO(l->text());
    CHECK(l->diags.has_errors());
}

TEST_CASE("a billion-laughs alias bomb is refused within a modest memory budget", "[parse][bomb]") {
#ifdef WGF_TEST_ASAN
    WARN("skipped under AddressSanitizer: it reserves more address space than the limit this test sets");
    return;
#else
    // Nine levels of ten: 10^9 "lol"s. The parser must stop with an error, and must not need
    // gigabytes on the way there: run it in a child limited to 512 MiB of address space.
    const std::string yaml = laughs(9);
    const int rc = test::in_child(512, [&] {
        config::Sources sources;
        config::Diagnostics diags;
        config::parse_text(yaml, "bomb.yaml", sources, diags);
        for (const auto& d : diags.all())
            if (d.message.find("too large") != std::string::npos) return 0;
        return 2;
    });
    INFO("child exit: " << rc << " (2 = no 'too large' error, 4 = out of memory, 5 = other exception, 100 + N = signal N)");
    CHECK(rc == 0);
#endif
}

TEST_CASE("duplicate keys in a large map are found wherever they are", "[parse][errors][duplicate]") {
    // Past a few keys the parser indexes a map's keys; a duplicate of a key from before the index
    // existed, and one after, must both be found, each pointing at the first definition.
    std::string yaml = "fleets:\n  mesh:\n    controllers:\n      s1: {}\n    peers:\n";
    for (int i = 0; i < 40; ++i) yaml += fmt::format("      p{:02}: {{}}\n", i);
    yaml += "      p03: {}\n      p30: {}\n      p03: {}\n";
    auto l = parse_only(yaml);
    INFO(l->text());
    auto errs = l->errors();
    REQUIRE(errs.size() == 3);
    CHECK(errs[0].loc.line == 46);
    CHECK(errs[0].path == "fleets.mesh.peers.p03");
    CHECK(errs[0].message == "duplicate key 'p03' (first defined at line 9, column 7)");
    CHECK(errs[1].message == "duplicate key 'p30' (first defined at line 36, column 7)");
    CHECK(errs[2].loc.line == 48);
    CHECK(errs[2].message == "duplicate key 'p03' (first defined at line 9, column 7)");
}

// ---------------------------------------------------------------------------------------------
// The parser's key tables and the JSON Schema describe the same mappings

namespace {

// One YAML mapping: its definition in schema/wg-fleet.schema.json, where a key goes in a YAML
// text, and the YAML path of such a key.
struct Mapping {
    const char* schema_def;            // "" for the document root
    std::vector<std::string> context;  // "key: value" lines the mapping needs to be parsed at all
    std::string before, indent, path;
};

const std::vector<Mapping>& mappings() {
    static const std::vector<Mapping> all = {
        {.schema_def = "", .context = {}, .before = "", .indent = "", .path = ""},
        // A key only subnet-style fleets have is tried in a subnet-style fleet, every other one in
        // a clan-style fleet (see subnet_only()).
        {.schema_def = "fleet", .context = {"controllers: { c: {} }"}, .before = "fleets:\n  f:\n", .indent = "    ", .path = "fleets.f"},
        {.schema_def = "controller",
         .context = {},
         .before = "fleets:\n  f:\n    controllers:\n      c:\n",
         .indent = "        ",
         .path = "fleets.f.controllers.c"},
        {.schema_def = "peer",
         .context = {},
         .before = "fleets:\n  f:\n    controllers: { c: {} }\n    peers:\n      p:\n",
         .indent = "        ",
         .path = "fleets.f.peers.p"},
        {.schema_def = "forward", .context = {}, .before = "forwards:\n  -\n", .indent = "    ", .path = "forwards[0]"},
        {.schema_def = "httpRoute", .context = {}, .before = "http_routes:\n  -\n", .indent = "    ", .path = "http_routes[0]"},
        {.schema_def = "headscale",
         .context = {},
         .before = "fleets:\n  f:\n    ip6: fd00::1\n    subnet: fd00::/64\n    headscale:\n",
         .indent = "      ",
         .path = "fleets.f.headscale"},
    };
    return all;
}

const nlohmann::json& schema() {
    static const nlohmann::json s = [] {
        std::ifstream in(WGF_SCHEMA_FILE);
        REQUIRE(in);
        return nlohmann::json::parse(in);
    }();
    return s;
}

const nlohmann::json& schema_def(const Mapping& m) { return *m.schema_def ? schema().at("$defs").at(m.schema_def) : schema(); }

std::set<std::string> schema_keys(const Mapping& m) {
    std::set<std::string> out;
    for (const auto& [k, v] : schema_def(m).at("properties").items()) out.insert(k);
    return out;
}

// The keys the schema forbids in a clan-style fleet.
std::set<std::string> subnet_only() {
    std::set<std::string> out;
    for (const auto& [k, v] : schema().at("$defs").at("fleet").at("oneOf").at(0).at("properties").items())
        if (v == false) out.insert(k);
    return out;
}

// The mapping's YAML with `key: value` in it (and the context the key needs).
std::string yaml_with(const Mapping& m, const std::string& key, const std::string& value) {
    std::vector<std::string> context = m.context;
    if (std::string_view(m.schema_def) == "fleet" && subnet_only().count(key)) context = {"ip6: fd00::1", "subnet: fd00::/64"};
    std::string yaml = m.before;
    for (const auto& line : context)
        if (line.substr(0, line.find(':')) != key) yaml += m.indent + line + "\n";
    return yaml + m.indent + key + ": " + value + "\n";
}

std::string key_path(const Mapping& m, const std::string& key) { return m.path.empty() ? key : m.path + "." + key; }

}  // namespace

TEST_CASE("every key the schema allows in a mapping is accepted and parsed there", "[parse][schema]") {
    for (const auto& m : mappings()) {
        for (const auto& key : schema_keys(m)) {
            // A one-element list is wrong for every key: the key's own parser reports it, at the
            // key's path or below, which shows that it ran.
            const std::string yaml = yaml_with(m, key, "[1]");
            auto l = parse_only(yaml);
            INFO("YAML:\n" << yaml << "\nDiagnostics:\n" << l->text());
            const std::string at = key_path(m, key);
            bool parsed = false;
            for (const auto& d : l->errors()) {
                CHECK_FALSE(test::contains(d.message, "unknown key"));
                parsed = parsed || d.path == at || d.path.rfind(at + "[", 0) == 0 || d.path.rfind(at + ".", 0) == 0;
            }
            CHECK(parsed);
        }
    }
}

TEST_CASE("every key a mapping accepts is in the schema, and so are the keys a list item needs", "[parse][schema]") {
    for (const auto& m : mappings()) {
        // A key far from every allowed one: the error lists the allowed keys.
        const std::string yaml = yaml_with(m, "zzzzzzzzzz", "1");
        auto l = parse_only(yaml);
        INFO("YAML:\n" << yaml << "\nDiagnostics:\n" << l->text());
        auto errs = l->at(key_path(m, "zzzzzzzzzz"));
        REQUIRE(errs.size() == 1);
        const std::string lead = "unknown key 'zzzzzzzzzz' — allowed keys here: ";
        REQUIRE(errs[0].message.rfind(lead, 0) == 0);
        std::set<std::string> accepted;
        std::string list = errs[0].message.substr(lead.size());
        for (size_t at = 0; at <= list.size();) {
            size_t comma = std::min(list.find(", ", at), list.size());
            accepted.insert(list.substr(at, comma - at));
            at = comma + 2;
        }
        CHECK(accepted == schema_keys(m));

        // An empty item reports each key it must have.
        if (!schema_def(m).contains("required")) continue;
        auto empty = parse_only(m.before.substr(0, m.before.size() - 1) + " {}\n");
        std::set<std::string> missing;
        for (const auto& d : empty->at(m.path)) {
            const std::string what = "missing required key '";
            if (d.message.rfind(what, 0) == 0) missing.insert(d.message.substr(what.size(), d.message.size() - what.size() - 1));
        }
        CHECK(missing == schema_def(m).at("required").get<std::set<std::string>>());
    }
}

TEST_CASE("a clan-style fleet refuses exactly the keys the schema reserves for subnet-style fleets", "[parse][schema]") {
    const Mapping& fleet = mappings().at(1);
    const auto reserved = subnet_only();
    for (const auto& key : schema_keys(fleet)) {
        if (key == "controllers") continue;
        std::string yaml = fleet.before + fleet.indent + "controllers: { c: {} }\n" + fleet.indent + key + ": x\n";
        auto l = parse_only(yaml);
        INFO("YAML:\n" << yaml << "\nDiagnostics:\n" << l->text());
        bool refused = false;
        for (const auto& d : l->at(key_path(fleet, key)))
            refused = refused || d.message == "a fleet is either clan-style (controllers:) or subnet-style (ip6:, subnet:), not both";
        CHECK(refused == (reserved.count(key) > 0));
    }
}
