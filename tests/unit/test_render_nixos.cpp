// plan/render_nixos: Nix string escaping, and the module's shape where the evaluated values do not
// show it (tests/nixos/check_modules.py evaluates every example's modules with nix-instantiate).
#include <catch2/catch.hpp>

#include <string>

#include "helpers.hpp"
#include "plan/render_nixos.hpp"

using namespace wgf;
using plan::nix_string;

TEST_CASE("nix_string escapes what a Nix string literal interprets", "[render][nixos]") {
    CHECK(nix_string("") == R"("")");
    CHECK(nix_string("plain /var/lib/wg-fleet") == R"("plain /var/lib/wg-fleet")");
    CHECK(nix_string(R"(a "quoted" word)") == R"("a \"quoted\" word")");
    CHECK(nix_string(R"(back\slash)") == R"("back\\slash")");
    CHECK(nix_string("line\nbreak\r\ttab") == R"("line\nbreak\r\ttab")");
    // `${` would interpolate; a lone `$` or `$` before anything else stays as it is.
    CHECK(nix_string("${pkgs.evil}") == R"("\${pkgs.evil}")");
    CHECK(nix_string("$${x}") == R"("$\${x}")");
    CHECK(nix_string("cost $5, end $") == R"("cost $5, end $")");
    CHECK(nix_string(R"(\${)") == R"("\\\${")");
}

TEST_CASE("the NixOS module names the key file and escapes it, never a key", "[render][nixos]") {
    std::string yaml = std::string(test::kClanFleetYaml) + "state_dir: '/srv/we\"ird ${x} \\dir'\n";
    auto l = test::check(yaml);
    INFO(l->text());
    REQUIRE_FALSE(l->diags.has_errors());
    plan::Fleetwide fw(l->cfg());
    std::string m = plan::render_nixos_module(fw, "peer1", "fleet.yaml");
    CHECK(test::contains(m, R"(privateKeyFile = "/srv/we\"ird \${x} \\dir/wg-test-one.key";)"));
    CHECK_FALSE(test::contains(m, "privateKey ="));
    CHECK(test::contains(m, "{ config, lib, pkgs, ... }:"));
}

TEST_CASE("a peer of several controllers gets wg-fleet's routes with their source in postSetup", "[render][nixos]") {
    // peer3 announces an IPv6 prefix: the others route it from their address in their designated
    // controller's subnet.
    std::string yaml = test::kClanFleetYaml;
    yaml.replace(yaml.find("routes: [10.20.0.0/16]"), 22, R"(routes: [10.20.0.0/16, "fd99:20::/64"])");
    auto l = test::check(yaml);
    INFO(l->text());
    REQUIRE_FALSE(l->diags.has_errors());
    plan::Fleetwide fw(l->cfg());
    std::string peer = plan::render_nixos_module(fw, "peer1", "fleet.yaml");
    CHECK(test::contains(peer, "allowedIPsAsRoutes = false;"));
    CHECK(test::contains(peer, R"("ip -4 route replace 10.20.0.0/16 dev wg-test-one")"));
    CHECK(test::contains(peer, R"("ip -6 route replace fd99:20::/64 dev wg-test-one src )"));
    // An interface name is one word for the shell that runs postSetup, whatever it holds.
    yaml.replace(yaml.find("  wg-test-one:\n"), 15, "  wg-test-one:\n    interface: \"w'$x;y\"\n");
    auto odd = test::check(yaml);
    INFO(odd->text());
    REQUIRE_FALSE(odd->diags.has_errors());
    plan::Fleetwide ofw(odd->cfg());
    CHECK(test::contains(plan::render_nixos_module(ofw, "peer1", "fleet.yaml"), R"("ip -4 route replace 10.20.0.0/16 dev 'w'\\''$x;y'")"));
    // A controller's routes need no source: NixOS routes the peers' allowed IPs.
    std::string controller = plan::render_nixos_module(fw, "controller1", "fleet.yaml");
    CHECK(test::contains(controller, "allowedIPsAsRoutes = true;"));
    CHECK_FALSE(test::contains(controller, "postSetup"));
}

TEST_CASE("default.nix maps every node to its module file", "[render][nixos]") {
    std::string index = plan::render_nixos_index({"edge1", "vm-123"});
    CHECK(test::contains(index, "\"edge1\" = ./edge1.nix;"));
    CHECK(test::contains(index, "\"vm-123\" = ./vm-123.nix;"));
}
